"""Holds listening sockets across restarts of a program, as systemd does for a socket unit: binds
127.0.0.1:0 for each name given, prints `port <name> <port>` lines, then starts the command once per
line read on stdin ("start"), passing the sockets as descriptors 3… with LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID set for the child (sd_listen_fds(3)); "stop" sends it SIGTERM and waits; "quit" ends.
Usage: socket_holder.py NAME[,NAME...] -- COMMAND..."""
import os
import signal
import socket
import subprocess
import sys

names = sys.argv[1].split(",")
command = sys.argv[sys.argv.index("--") + 1:]
sockets = []
for name in names:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(511)
    sockets.append(s)
    print(f"port {name} {s.getsockname()[1]}", flush=True)

child = None


def prepare():
    # in the child, before exec: the sockets at 3, 4, … and LISTEN_PID its own pid
    for i, s in enumerate(sockets):
        os.dup2(s.fileno(), 3 + i)
        os.set_inheritable(3 + i, True)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = str(len(sockets))
    os.environ["LISTEN_FDNAMES"] = ":".join(names)


for line in sys.stdin:
    verb = line.strip()
    if verb == "start":
        child = subprocess.Popen(command, preexec_fn=prepare, pass_fds=tuple(range(3, 3 + len(sockets))), stdout=sys.stderr, stderr=sys.stderr)
        print(f"started {child.pid}", flush=True)
    elif verb == "stop" and child is not None:
        child.send_signal(signal.SIGTERM)
        print(f"stopped {child.wait()}", flush=True)
        child = None
    elif verb == "quit":
        break
if child is not None:
    child.kill()
