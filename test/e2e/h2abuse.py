"""HTTP/2 protocol abuse against a cleartext (prior-knowledge) fiberd port, written with the h2 library
(Debian python3-h2). Usage: h2abuse.py PORT MODE. Prints one line: what the server did, e.g.
`goaway 11 after 120 frames`, `reset 1 code 7`, `answer 431`, `closed`."""
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

port, mode = int(sys.argv[1]), sys.argv[2]
sock = socket.create_connection(("127.0.0.1", port))
sock.settimeout(10)
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
conn.initiate_connection()
sock.sendall(conn.data_to_send())

REQUEST = [(":method", "GET"), (":path", "/"), (":authority", "localhost"), (":scheme", "http")]


def events_until(done, seconds=10):
    """Reads and returns the server's events until `done(event)` says so, the server closes, or `seconds` pass."""
    seen = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            seen.append("closed")
            return seen
        if not data:
            seen.append("closed")
            return seen
        try:
            events = conn.receive_data(data)
        except Exception as e:  # a frame h2 refuses after the server's GOAWAY
            seen.append(f"error {type(e).__name__}")
            return seen
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                pass
        for event in events:
            seen.append(event)
            if done(event):
                return seen
    return seen


def goaway(event):
    return isinstance(event, h2.events.ConnectionTerminated)


def describe(seen):
    """The first thing the server did about our stream or connection: an answer, a stream reset, a GOAWAY."""
    for e in seen:
        if isinstance(e, h2.events.ResponseReceived):
            return "answer " + dict(e.headers)[":status"]
        if isinstance(e, h2.events.StreamReset):
            return f"reset {int(e.error_code)}"
        if isinstance(e, h2.events.ConnectionTerminated):
            return f"goaway {int(e.error_code)}"
    return "closed" if "closed" in seen else "open"


OUTCOME = (h2.events.StreamReset, h2.events.ResponseReceived, h2.events.ConnectionTerminated)


def terminated(seen):
    """How the connection ended: its GOAWAY's code, or closed without one (or still open)."""
    return describe([e for e in seen if not isinstance(e, (h2.events.ResponseReceived, h2.events.StreamReset))])


def send(_progress=0):
    try:
        sock.sendall(conn.data_to_send())
    except OSError:
        return False
    return True


if mode == "rapid-reset":
    # HEADERS then RST_STREAM, thousands of times (CVE-2023-44487)
    sent = 0
    for i in range(5000):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, REQUEST, end_stream=True)
        conn.reset_stream(sid, error_code=8)
        sent += 1
        if i % 100 == 99 and not send(sent):
            break
    send(sent)
    print(terminated(events_until(goaway)))
elif mode == "settings-flood":
    for i in range(2000):
        conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100 + i})
        if i % 100 == 99 and not send(i):
            break
    send(0)
    print(terminated(events_until(goaway)))
elif mode == "ping-flood":
    for i in range(5000):
        conn.ping(i.to_bytes(8, "big"))
        if i % 200 == 199 and not send(i):
            break
    send(0)
    print(terminated(events_until(goaway)))
elif mode == "big-headers":
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, REQUEST + [(f"x-filler-{i}", "v" * 200) for i in range(200)], end_stream=True)
    send(0)
    print(describe(events_until(lambda e: isinstance(e, OUTCOME))))
elif mode == "no-body":
    # a POST whose body never comes: the server answers 408 (requestTimeout) or resets the stream
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":path", "/x"), (":authority", "localhost"), (":scheme", "http")], end_stream=False)
    send(0)
    print(describe(events_until(lambda e: isinstance(e, OUTCOME), seconds=30)))
elif mode == "too-many-streams":
    # more streams at once than the SETTINGS_MAX_CONCURRENT_STREAMS it acknowledged (each a slow request, so they
    # stay open): nghttp2 treats it as a connection error (RFC 9113 §5.1.2 allows a stream or a connection error)
    limit = int(sys.argv[3])
    events_until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
    type(conn).open_outbound_streams = property(lambda self: 0)  # h2 would keep to the limit: make it not count
    for i in range(limit + 5):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":path", "/api/pbkdf2?rounds=300000"), (":authority", "localhost"), (":scheme", "http")], end_stream=True)
    send(0)
    seen = events_until(goaway)
    refused = [e for e in seen if isinstance(e, h2.events.StreamReset) and int(e.error_code) == 7]
    print(f"refused {len(refused)}" if refused else terminated(seen))
else:
    sys.exit(f"unknown mode {mode}")
