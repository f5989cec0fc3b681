# t_14_core_residue.sh - card data left in a live tokend's memory (issue #15,
# finding 9): tokenise N canary cards (Luhn-valid test-BIN numbers with a random
# middle, made now and never written to the repository), dump the live process
# with gcore (Debian gdb), count the canaries (PANs, CVCs with their context,
# holder names) in the core, print the figures, assert the documented bound
# (SECURITY.md, "Card data in memory"), and delete the core.

PY=/usr/bin/python3
if [ -n "${TOKEND_TEST_SANITIZER:-}" ]; then
    # ASan's shadow memory is tens of GB of mappings: a core of it filled the disk once, and
    # what it counts is the uninstrumented build's residue anyway
    echo "  skip  core residue: an ASan process's core holds its shadow memory (checked by make test)"
    return
fi
if ! command -v gcore >/dev/null; then
    fail "core residue: gcore (Debian gdb) is installed"
    return
fi
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN_C=$("${CTL[@]}" tenant create "core-$$" 2>/dev/null)
KEY_C=$("${CTL[@]}" key create --tenant "$TEN_C" --scopes tokens:write,tokens:read --test 2>/dev/null)
expect_match "core residue: tenant and key" "$TEN_C $KEY_C" '^ten_.* sk_test_'
tokend_start C || { fail "tokend starts (core residue)"; return; }
C_PID=$TOKEND_PID_C
N=${T14_CANARIES:-200}

# canaries.py N H2C_PORT TLS_PORT KEY CA CANARY_FILE: tokenises N canary cards (one
# connection each way: h2c and TLS, alternately) and writes the canaries to CANARY_FILE
$PY - "$N" "$H2C_C" "$TLS_C" "$KEY_C" "$T_DIR/canaries" <<'PY' >"$T_DIR/t14.out" 2>&1
import json, secrets, socket, ssl, sys, time
import h2.config, h2.connection, h2.events
n, h2c, tls, key, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def luhn_digit(body):
    s = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return str((10 - s % 10) % 10)
cards = []
for i in range(n):
    body = "400000" + "".join(secrets.choice("0123456789") for _ in range(9))
    pan = body + luhn_digit(body)
    if pan[-4:] in ("0002", "9995"):
        continue
    cvc = "".join(secrets.choice("0123456789") for _ in range(3))
    name = "Canary " + secrets.token_hex(6)
    cards.append((pan, cvc, name))
with open(out, "w") as f:
    for c in cards:
        f.write("%s %s %s\n" % c)
def connect(port, use_tls):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if use_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c
conns = [connect(h2c, False), connect(tls, True)]
ok = 0
year = time.gmtime().tm_year + 2
for i, (pan, cvc, name) in enumerate(cards):
    s, c = conns[i % 2]
    sid = c.get_next_available_stream_id()
    body = json.dumps({"card": {"number": pan, "exp_month": 12, "exp_year": year, "cvc": cvc, "name": name}}).encode()
    c.send_headers(sid, [(":method", "POST"), (":path", "/v1/tokens"), (":scheme", "https" if i % 2 else "http"),
                         (":authority", "localhost"), ("authorization", "Bearer " + key),
                         ("content-type", "application/json"), ("content-length", str(len(body)))])
    c.send_data(sid, body, end_stream=True)
    s.sendall(c.data_to_send())
    done = False
    while not done:
        d = s.recv(65536)
        if not d:
            break
        for ev in c.receive_data(d):
            if isinstance(ev, h2.events.ResponseReceived) and dict(ev.headers).get(b":status") == b"201":
                ok += 1
            if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                done = True
        s.sendall(c.data_to_send())
print("tokenised %d of %d" % (ok, len(cards)))
PY
echo "  core residue: $(cat "$T_DIR/t14.out")" >&2
expect_match "core residue: every canary card was tokenised" "$(cat "$T_DIR/t14.out")" '^tokenised ([0-9]+) of \1$'
sleep 0.5
rm -f "$T_DIR/core".*
gcore -o "$T_DIR/core" "$C_PID" >"$T_DIR/gcore.log" 2>&1
core=$(ls "$T_DIR"/core.* 2>/dev/null | head -n 1)
if [ -z "$core" ]; then
    fail "core residue: gcore dumped the live tokend ($(tail -n 2 "$T_DIR/gcore.log"))"
else
    # one pass each with grep -F (Aho-Corasick): the core is hundreds of MB
    awk '{print $1}' "$T_DIR/canaries" >"$T_DIR/c.pans"
    awk '{printf "\"cvc\": \"%s\"\n\"cvc\":\"%s\"\n", $2, $2}' "$T_DIR/canaries" >"$T_DIR/c.cvcs"
    awk '{print $3" "$4}' "$T_DIR/canaries" >"$T_DIR/c.names"
    copies=$(grep -a -o -F -f "$T_DIR/c.pans" "$core" | wc -l)
    pans=$(grep -a -o -F -f "$T_DIR/c.pans" "$core" | sort -u | wc -l)
    cvcs=$(grep -a -o -F -f "$T_DIR/c.cvcs" "$core" | sort -u | wc -l)
    names=$(grep -a -o -F -f "$T_DIR/c.names" "$core" | sort -u | wc -l)
    echo "  core residue: $(stat -c %s "$core") byte core after $(wc -l <"$T_DIR/canaries") canary cards: $pans PANs found ($copies copies), $cvcs CVCs, $names holder names" >&2
    rm -f "$core" "$T_DIR/c.pans" "$T_DIR/c.cvcs" "$T_DIR/c.names"
    expect_eq "core residue: no canary PAN in the core of a live tokend" "$pans" 0
    expect_eq "core residue: no canary CVC in the core" "$cvcs" 0
    expect_eq "core residue: no canary holder name in the core" "$names" 0
fi
tokend_stop C
