#!/usr/bin/env python3
"""Runs a command under a unit's user and sandbox, for scripts/test-systemd:

  unit-probe.py /lib/systemd/system/UNIT -- COMMAND…

Reads the [Service] section of UNIT and runs COMMAND with `systemd-run --wait
--pipe` and every one of its settings as a property, except those that describe
the daemon's own process (Type=, ExecStart=, the watchdog, restarts, timeouts) and
RuntimeDirectory= (a transient unit removes its runtime directory when it ends,
which would take the running daemon's socket with it). Exits with COMMAND's status.
"""
import subprocess
import sys

unit_path = sys.argv[1]
assert sys.argv[2] == "--", "usage: unit-probe.py UNIT -- COMMAND…"
command = sys.argv[3:]
skipped = ("Type", "NotifyAccess", "ExecStart", "ExecStartPre", "ExecStartPost", "ExecStop", "ExecReload", "Restart",
           "RestartSec", "RestartPreventExitStatus", "TimeoutStartSec", "TimeoutStopSec", "WatchdogSec", "RemainAfterExit",
           "RuntimeDirectory", "RuntimeDirectoryMode", "SuccessExitStatus")
properties = []
section = None
for raw in open(unit_path):
    line = raw.strip()
    if not line or line.startswith("#") or line.startswith(";"):
        continue
    if line.startswith("["):
        section = line
        continue
    if section != "[Service]" or "=" not in line:
        continue
    key = line.split("=", 1)[0]
    if key in skipped:
        continue
    properties += ["-p", line]
result = subprocess.run(["systemd-run", "--wait", "--pipe", "--quiet", "--collect", *properties, "--", *command])
sys.exit(result.returncode)
