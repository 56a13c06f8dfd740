#!/usr/bin/env python3
"""Sends access events to osmose-journald's intake socket, in its framed JSON
protocol (docs/journal.md), for scripts/test-systemd.

  intake.py --request-id PREFIX --count N [--interval SECONDS] [--socket PATH] [--give-up-after SECONDS]

Event i carries the request id PREFIX-i (PREFIX alone when N is 1). Each event is
sent until the daemon acknowledges it: a refused connection or a reset (the daemon
restarting during an upgrade) is retried for up to 120 s (--give-up-after), so that the count of
acknowledged events is exact. Prints the acknowledged count and the retries; exits
1 when an event was never acknowledged or was refused.
"""
import argparse
import json
import socket
import struct
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--request-id", required=True)
parser.add_argument("--count", type=int, default=1)
parser.add_argument("--interval", type=float, default=0.0)
parser.add_argument("--socket", default="/run/osmose-journald/intake.sock")
parser.add_argument("--give-up-after", type=float, default=120.0)
arguments = parser.parse_args()


def receive_exactly(connection, size):
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the daemon closed the connection")
        data += chunk
    return data


def send(connection, event):
    body = json.dumps(event).encode()
    connection.sendall(struct.pack(">I", len(body)) + body)
    (length,) = struct.unpack(">I", receive_exactly(connection, 4))
    return json.loads(receive_exactly(connection, length))


connection = None
acknowledged = 0
retries = 0
for index in range(arguments.count):
    request_id = arguments.request_id if arguments.count == 1 else f"{arguments.request_id}-{index}"
    event = {"request_id": request_id, "action": "read", "object_type": "systemd-test", "object_id": str(index), "result": "success", "purpose": "administration"}
    deadline = time.monotonic() + arguments.give_up_after
    while True:
        try:
            if connection is None:
                connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                connection.settimeout(60)
                connection.connect(arguments.socket)
            reply = send(connection, event)
            break
        except (ConnectionError, FileNotFoundError, socket.timeout, OSError) as error:
            if connection is not None:
                connection.close()
                connection = None
            retries += 1
            if time.monotonic() > deadline:
                print(f"{request_id}: never acknowledged: {error}")
                sys.exit(1)
            time.sleep(0.2)
    if not reply.get("ok"):
        print(f"{request_id}: refused: {reply}")
        sys.exit(1)
    acknowledged += 1
    if arguments.interval:
        time.sleep(arguments.interval)
print(f"{acknowledged} acknowledged, {retries} retries")
