#!/usr/bin/python3
"""h2_post_many.py PORT PATH DIR N [CONCURRENCY]: POSTs DIR/1.json .. DIR/N.json to
http://127.0.0.1:PORT/PATH over one h2c connection, at most CONCURRENCY (32) streams at a time,
each with the header line in DIR/<i>.sig and content-type application/json. A 503 or a lost
connection is sent again (at most 10 times, 1 s apart), as a gateway redelivers. Prints one line:
'<status>:<count> ...' of the final answers; exit 1 when any request got no answer."""
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions

port, path, d, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
conc = int(sys.argv[5]) if len(sys.argv) > 5 else 32
todo = list(range(1, n + 1))  # requests not answered yet, in order
tries = {i: 0 for i in todo}
final = {}
deadline = time.monotonic() + 120


def request(i):
    name, value = open(f"{d}/{i}.sig").read().strip().split(":", 1)
    body = open(f"{d}/{i}.json", "rb").read()
    headers = [(":method", "POST"), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"),
               (":path", path), ("content-type", "application/json"),
               (name.strip().lower(), value.strip()), ("content-length", str(len(body)))]
    return headers, body


while todo and time.monotonic() < deadline:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        time.sleep(1)
        continue
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    inflight = {}  # stream id -> request number
    status = {}
    retry = []
    try:
        while (todo or inflight) and time.monotonic() < deadline:
            while todo and len(inflight) < conc:
                i = todo.pop(0)
                sid = conn.get_next_available_stream_id()
                headers, body = request(i)
                conn.send_headers(sid, headers)
                conn.send_data(sid, body, end_stream=True)
                inflight[sid] = i
            sock.sendall(conn.data_to_send())
            if not inflight:
                break
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status[ev.stream_id] = dict(ev.headers).get(b":status", b"0").decode()
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    i = inflight.pop(ev.stream_id, None)
                    st = status.pop(ev.stream_id, "reset")
                    if i is None:
                        continue
                    tries[i] += 1
                    if st in ("503", "reset") and tries[i] < 10:
                        retry.append(i)
                    else:
                        final[i] = st
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise ConnectionError("goaway")
            sock.sendall(conn.data_to_send())
            if retry and not inflight:
                time.sleep(1)
                todo[:0] = retry
                retry = []
    except (OSError, ConnectionError, h2.exceptions.ProtocolError):
        pass
    finally:
        sock.close()
    todo[:0] = sorted(set(retry) | set(inflight.values()))
    if todo:
        time.sleep(1)

counts = {}
for st in final.values():
    counts[st] = counts.get(st, 0) + 1
print(" ".join(f"{k}:{v}" for k, v in sorted(counts.items())) + (f" unanswered:{len(todo)}" if todo else ""))
sys.exit(1 if todo else 0)
