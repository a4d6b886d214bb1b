"""A systemd notify socket for tests: binds a Unix datagram socket at argv[1] (`@name`: in the abstract
namespace, as systemd's own notify socket) and prints each datagram it
receives as one line, `<ms since start> <assignments separated by |>`, until killed."""
import os
import socket
import sys
import time

path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("\0" + path[1:] if path.startswith("@") else path)
print("bound", flush=True)
start = time.monotonic()
while True:
    data = sock.recv(65536).decode("utf-8", "replace")
    print(f"{int((time.monotonic() - start) * 1000)} {'|'.join(data.strip().splitlines())}", flush=True)
