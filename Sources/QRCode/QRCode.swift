internal import CQRencode
import Foundation

/// An error encoding a QR code.
public struct QRCodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why: the text is too long for a QR code, or libqrencode failed.
    public let message: String
    public var description: String { "qrcode.encoding_failed: \(message)" }
}

/// A QR code symbol (ISO/IEC 18004) encoded by Debian's libqrencode: a square of
/// modules, each dark or light. Used for the TOTP enrolment, whose URL an
/// authenticator app scans.
public struct QRCode: Sendable, Hashable {
    /// Modules per side.
    public let width: Int
    /// Row by row, true for a dark module.
    public let modules: [Bool]

    /// Encodes `text` (8-bit mode, case kept) at error-correction level M.
    /// - Throws: ``QRCodeError`` when the text does not fit in a QR code.
    public init(encoding text: String) throws {
        guard let symbol = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M) else {
            throw QRCodeError(message: "the text (\(text.utf8.count) bytes) cannot be encoded: \(String(cString: strerror(errno)))")
        }
        defer { QRcode_free(symbol) }
        let width = Int(symbol.pointee.width)
        // Bit 0 of each byte is the module's colour (1 = dark); the other bits say what the module is for.
        modules = (0..<(width * width)).map { symbol.pointee.data[$0] & 1 == 1 }
        self.width = width
    }

    /// Whether the module at `column`, `row` is dark.
    public func isDark(column: Int, row: Int) -> Bool { modules[row * width + column] }

    /// The symbol as an SVG image with the 4-module quiet zone the standard requires,
    /// one path of unit squares (crisp at any size), titled for screen readers.
    public func svg(size: Int, title: String) -> String {
        let side = width + 8
        var path = ""
        for row in 0..<width {
            for column in 0..<width where isDark(column: column, row: row) { path += "M\(column + 4) \(row + 4)h1v1h-1z" }
        }
        let escapedTitle = title.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        return """
            <svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="qr-title" width="\(size)" height="\(size)" viewBox="0 0 \(side) \(side)" shape-rendering="crispEdges">\
            <title id="qr-title">\(escapedTitle)</title><rect width="\(side)" height="\(side)" fill="#fff"/><path fill="#000" d="\(path)"/></svg>
            """
    }

    /// The symbol as a binary PBM image (`P4`), `scale` pixels per module with the
    /// quiet zone: what a decoder such as zbarimg reads in the tests.
    public func pbm(scale: Int) -> [UInt8] {
        let side = (width + 8) * scale
        var bytes = Array("P4\n\(side) \(side)\n".utf8)
        let rowBytes = (side + 7) / 8
        for y in 0..<side {
            var line = [UInt8](repeating: 0, count: rowBytes)
            let row = y / scale - 4
            for x in 0..<side {
                let column = x / scale - 4
                if row >= 0, row < width, column >= 0, column < width, isDark(column: column, row: row) {
                    line[x / 8] |= 0x80 >> UInt8(x % 8)
                }
            }
            bytes += line
        }
        return bytes
    }
}
