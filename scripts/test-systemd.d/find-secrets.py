#!/usr/bin/env python3
"""Looks for secrets in clear in a directory tree, for scripts/test-systemd:

  find-secrets.py ROOT SECRET_FILE…

Prints every regular file under ROOT (symbolic links not followed; /proc, /sys,
/dev and /run skipped) whose bytes contain one of the secrets, each given as a
file holding it (a text key, or raw bytes such as the 32-byte master key; at
least 16 bytes, surrounding whitespace ignored for text). Exits 1 when one is
found, 0 otherwise.
"""
import os
import sys

root = sys.argv[1]
secrets = []
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    stripped = data.strip() if all(32 <= b < 127 or b in (9, 10, 13) for b in data) else data
    if len(stripped) < 16:
        sys.exit(f"{path}: a secret of {len(stripped)} bytes is too short to search for")
    secrets.append((path, stripped))
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
        for secret_path, secret in secrets:
            if secret in data:
                print(f"{path[len(root):]}: holds {os.path.basename(secret_path)} in clear")
                found = True
sys.exit(1 if found else 0)
