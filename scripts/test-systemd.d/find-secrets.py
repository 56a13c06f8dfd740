#!/usr/bin/env python3
"""Looks for secrets in clear in a directory tree, for scripts/test-systemd:

  find-secrets.py ROOT SECRET_FILE…

Prints every regular file under ROOT (symbolic links not followed; /proc, /sys,
/dev and /run skipped) whose bytes contain one of the secrets, each given as a
file holding it (a text key, or raw bytes such as the 32-byte master key; at
least 16 bytes, surrounding whitespace ignored for text). Exits 1 when one is
found, 0 otherwise.
"""
import base64
import binascii
import os
import sys

root = sys.argv[1]
secrets = []
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    stripped = data.strip() if all(32 <= b < 127 or b in (9, 10, 13) for b in data) else data
    if len(stripped) < 16:
        sys.exit(f"{path}: a secret of {len(stripped)} bytes is too short to search for")
    # The secret as stored, and as a program might have written it out: base64
    # (with and without padding) and hex, of the raw bytes, or of what a text key
    # decodes to when it is base64 itself.
    forms = {stripped}
    raw = [stripped]
    try:
        decoded = base64.b64decode(stripped, validate=True)
        if len(decoded) >= 16:
            raw.append(decoded)
            forms.add(decoded)
    except (binascii.Error, ValueError):
        pass
    for value in raw:
        encoded = base64.b64encode(value)
        forms.update({encoded, encoded.rstrip(b"="), base64.urlsafe_b64encode(value).rstrip(b"="), value.hex().encode(), value.hex().upper().encode()})
    secrets.append((path, [form for form in forms if len(form) >= 16]))
found = False
skipped = {os.path.join(root, name) for name in ("proc", "sys", "dev", "run")}
for directory, subdirectories, files in os.walk(root):
    subdirectories[:] = [name for name in subdirectories if os.path.join(directory, name) not in skipped]
    for name in files:
        path = os.path.join(directory, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        for secret_path, forms in secrets:
            if any(form in data for form in forms):
                print(f"{path[len(root):]}: holds {os.path.basename(secret_path)} in clear (as stored, base64 or hex)")
                found = True
sys.exit(1 if found else 0)
