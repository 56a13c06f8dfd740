#ifndef OSMOSE_CQRENCODE_SHIM_H
#define OSMOSE_CQRENCODE_SHIM_H

// Debian's libqrencode (libqrencode-dev): QR code symbols (ISO/IEC 18004).
#include <qrencode.h>

#endif
