# t_47_token_idempotency.sh - Idempotency-Key on POST /v1/tokens (issue #16): a retried
# tokenisation replays the first answer and makes no second gateway call (counted at gwsim);
# another body under the same key is 422; concurrent duplicates reach the gateway once; keys
# belong to one API key (another secret key, or a publishable one, never reaches the record);
# a publishable key's replay is its own publishable answer; a decline (402) is replayed, a
# gateway failure (502) and a refused body (422) give the key back; no key in clear, no card
# data in the records.

I_SK=sk_test_tokidem_$$
I_AK=adyen_tokidem_key_$$
I_MERCHANT=TokendIdemECOM
I_Y=$(($(date -u +%Y) + 1))
I_SHOP=https://shop.example
I_CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
I_PSQL() { psql "$T_ADMIN_DB" -XAtq -c "$1"; }

# gwsim, each gateway answer 300 ms late, so that duplicates sent together overlap
I_PORT=$(free_port)
"$BUILD/gwsim" --listen "127.0.0.1:$I_PORT" --tls-cert "$T_DIR/tls.crt" --tls-key "$T_DIR/tls.key" \
    --stripe-key "$I_SK" --adyen-key "$I_AK" --adyen-merchant "$I_MERCHANT" --latency-ms 300 \
    --ready-file "$T_DIR/i47.ready" 2>>"$T_DIR/i47-gwsim.log" &
T_PIDS+=("$!")
for i in $(seq 1 100); do [ -f "$T_DIR/i47.ready" ] && break; sleep 0.05; done
[ -f "$T_DIR/i47.ready" ] || { fail "gwsim starts"; return; }
gs() { curl -s --cacert "$T_DIR/tls.crt" "https://localhost:$I_PORT/__gwsim/stats" | jq -r "$1"; }

(umask 077 && printf '{"api_key":"%s"}' "$I_SK" >"$T_DIR/i47-stripe.json" &&
    printf '{"api_key":"%s","merchant_account":"%s"}' "$I_AK" "$I_MERCHANT" >"$T_DIR/i47-adyen.json")
I_TEN=$("${I_CTL[@]}" tenant create "tokidem-$$" 2>/dev/null)
I_SK1=$("${I_CTL[@]}" key create --tenant "$I_TEN" --scopes tokens:write,tokens:read --test 2>/dev/null)
I_SK2=$("${I_CTL[@]}" key create --tenant "$I_TEN" --scopes tokens:write,tokens:read --test 2>/dev/null)
I_PK=$("${I_CTL[@]}" key create --tenant "$I_TEN" --publishable --origin "$I_SHOP" --test 2>/dev/null)
"${I_CTL[@]}" gateway add --tenant "$I_TEN" --kind stripe --credentials-file "$T_DIR/i47-stripe.json" \
    --base-url "https://localhost:$I_PORT" --priority 1 >/dev/null 2>>"$T_DIR/i47-ctl.err"
I_TEN_A=$("${I_CTL[@]}" tenant create "tokidem-adyen-$$" 2>/dev/null)
I_SKA=$("${I_CTL[@]}" key create --tenant "$I_TEN_A" --scopes tokens:write,tokens:read --test 2>/dev/null)
"${I_CTL[@]}" gateway add --tenant "$I_TEN_A" --kind adyen --credentials-file "$T_DIR/i47-adyen.json" \
    --base-url "https://localhost:$I_PORT" --priority 1 >/dev/null 2>>"$T_DIR/i47-ctl.err"
expect_match "fixtures: two tenants, secret and publishable keys" "$I_TEN $I_SK1 $I_SK2 $I_PK $I_SKA" \
    '^ten_.* sk_test_.* sk_test_.* pk_test_.* sk_test_'

tokend_start I47 --gateway-ca-file "$T_DIR/tls.crt" --gateway-timeout-ms 5000 || { fail "tokend starts"; return; }
I_H2C="http://127.0.0.1:$H2C_I47"

# treq KEY IDEM BODY [curl args...] -> "<body>\n<status>"; headers in $T_DIR/i47.hdr
treq() {
    local key=$1 idem=$2 body=$3
    shift 3
    local a=(-s --http2-prior-knowledge -X POST -D "$T_DIR/i47.hdr" -w '\n%{http_code}'
        -H "authorization: Bearer $key" -H 'content-type: application/json' --data-binary "$body")
    [ -n "$idem" ] && a+=(-H "idempotency-key: $idem")
    curl "${a[@]}" "$@" "$I_H2C/v1/tokens"
}
st() { tail -n 1 <<<"$1"; }
jf() { sed '$d' <<<"$1" | jq -r "$2"; }
replayed() { grep -qi '^idempotent-replayed: true' "$T_DIR/i47.hdr" && echo replayed || echo fresh; }
card() { # PAN [exp_month] [cvc] [extra top-level members]
    printf '{"card":{"number":"%s","exp_month":%s,"exp_year":%s,"cvc":"%s"}%s}' \
        "$1" "${2:-3}" "$I_Y" "${3:-123}" "${4:+,$4}"
}
pms() { gs .stripe.payment_methods; }

# --- replay: the first answer, no second gateway call -------------------------------------------
P0=$(pms)
B=$(card 4242424242424242 3 123 '"metadata":{"order":"A-1"}')
a=$(treq "$I_SK1" "checkout-$$-1" "$B")
ra=$(replayed)
b=$(treq "$I_SK1" "checkout-$$-1" "$B")
rb=$(replayed)
expect_eq "first tokenisation: 201, fresh" "$(st "$a") $ra" "201 fresh"
expect_eq "retry, same key and body: 201, Idempotent-Replayed" "$(st "$b") $rb" "201 replayed"
expect_eq "retry: the same token, byte for byte" "$(sed '$d' <<<"$b")" "$(sed '$d' <<<"$a")"
expect_eq "retry: one PaymentMethod at the gateway, not two" "$(($(pms) - P0))" 1
TOK=$(jf "$a" .id)
expect_eq "one token stored" "$(I_PSQL "SELECT count(*) FROM vault.tokens WHERE tenant_id = '$I_TEN'")" 1
# the CVC is no part of the comparison: nothing derived from it is kept (PCI DSS 3.3.1.2)
c=$(treq "$I_SK1" "checkout-$$-1" "$(card 4242424242424242 3 999 '"metadata":{"order":"A-1"}')")
expect_eq "retry with another CVC: replayed (no form of the CVC is stored)" "$(st "$c") $(replayed) $(jf "$c" .id)" "201 replayed $TOK"

# --- same key, another request: 422, nothing at the gateway -----------------------------------------
P0=$(pms)
for variant in "$(card 4242424242424242 4)" "$(card 5555555555554444)" \
    "$(card 4242424242424242 3 123 '"metadata":{"order":"A-2"}')" \
    "$(card 4242424242424242 3 123 '"metadata":{"order":"A-1"},"format":"pan_shaped"')"; do
    out=$(treq "$I_SK1" "checkout-$$-1" "$variant")
    expect_eq "same key, other request ($(jq -c '[.card.number[12:], .card.exp_month, .metadata.order, .format]' <<<"$variant")): 422 idempotency_key_reused" \
        "$(st "$out") $(jf "$out" .code)" "422 idempotency_key_reused"
done
expect_eq "no gateway call for a reused key" "$(($(pms) - P0))" 0
out=$(treq "$I_SK1" "checkout-$$-1" "$B")
expect_eq "the original body still replays after the refusals" "$(st "$out") $(jf "$out" .id)" "201 $TOK"

# --- bad keys ------------------------------------------------------------------------------------------
out=$(curl -s --http2-prior-knowledge -X POST -H "authorization: Bearer $I_SK1" -H 'content-type: application/json' \
    -H 'idempotency-key;' --data-binary "$B" -w '\n%{http_code}' "$I_H2C/v1/tokens")
expect_eq "empty Idempotency-Key: 400 invalid_idempotency_key" "$(st "$out") $(jf "$out" .code)" "400 invalid_idempotency_key"
out=$(treq "$I_SK1" "$(printf 'k%.0s' $(seq 1 256))" "$B")
expect_eq "Idempotency-Key of 256 characters: 400" "$(st "$out") $(jf "$out" .code)" "400 invalid_idempotency_key"

# --- concurrent duplicates: one gateway call --------------------------------------------------------
P0=$(pms)
B2=$(card 4000056655665556)
par=()
for i in 1 2 3 4 5 6; do
    curl -s --http2-prior-knowledge -X POST -H "authorization: Bearer $I_SK1" -H 'content-type: application/json' \
        -H "idempotency-key: burst-$$" --data-binary "$B2" -w '\n%{http_code}' "$I_H2C/v1/tokens" >"$T_DIR/i47-burst.$i" &
    par+=($!)
done
wait "${par[@]}"
codes=$(for i in 1 2 3 4 5 6; do st "$(cat "$T_DIR/i47-burst.$i")"; done | sort | uniq -c | awk '{print $2 "x" $1}' | paste -sd' ')
fresh=$(for i in 1 2 3 4 5 6; do f="$T_DIR/i47-burst.$i"; [ "$(st "$(cat "$f")")" = 201 ] && sed '$d' "$f" | jq -r .id; done | sort -u | wc -l)
inflight=$(for i in 1 2 3 4 5 6; do f="$T_DIR/i47-burst.$i"; [ "$(st "$(cat "$f")")" = 409 ] && sed '$d' "$f" | jq -r .code; done | sort -u | paste -sd' ')
expect_match "6 concurrent duplicates: 201 once, the others 409 (in flight)" "$codes" '^201x1 409x5$'
expect_eq "the 409s say idempotency_in_flight" "$inflight" "idempotency_in_flight"
expect_eq "6 concurrent duplicates: one PaymentMethod at the gateway" "$(($(pms) - P0))" 1
out=$(treq "$I_SK1" "burst-$$" "$B2")
expect_eq "after the burst the key replays the one token" "$(st "$out") $(replayed) $fresh" "201 replayed 1"

# --- scoped to the API key ----------------------------------------------------------------------------
P0=$(pms)
out=$(treq "$I_SK2" "checkout-$$-1" "$B")
expect_eq "another secret key of the tenant, same key and body: a new token, not the replay" \
    "$(st "$out") $(replayed) $([ "$(jf "$out" .id)" != "$TOK" ] && echo new)" "201 fresh new"
expect_eq "... which called the gateway" "$(($(pms) - P0))" 1

# --- deduplicate: the existing token's 200 is what the key replays ---------------------------------------
P0=$(pms)
DB=$(card 4242424242424242 3 123 '"deduplicate":true')
d1=$(treq "$I_SK1" "dedup-$$" "$DB")
d2=$(treq "$I_SK1" "dedup-$$" "$DB")
expect_eq "deduplicate with a key: 200 (the stored token), then the same 200 replayed" \
    "$(st "$d1") $(st "$d2") $(replayed) $([ "$(sed '$d' <<<"$d1")" = "$(sed '$d' <<<"$d2")" ] && echo same)" "200 200 replayed same"
expect_eq "... and no gateway call for either" "$(($(pms) - P0))" 0

# --- publishable keys: the replay is the publishable answer, and no door into other records ------------
P0=$(pms)
PB=$(card 4242424242424242 3 123)
p1=$(treq "$I_PK" "pk-$$-1" "$PB" -H "origin: $I_SHOP")
p2=$(treq "$I_PK" "pk-$$-1" "$PB" -H "origin: $I_SHOP")
expect_eq "publishable key: 201 then the replay" "$(st "$p1") $(st "$p2") $(replayed)" "201 201 replayed"
expect_eq "publishable replay: the same publishable answer, byte for byte" "$(sed '$d' <<<"$p2")" "$(sed '$d' <<<"$p1")"
expect_eq "publishable replay: no fingerprint, bin, metadata or gateways" \
    "$(jf "$p2" '[has("fingerprint"), has("bin"), has("metadata"), has("gateways")]|map(tostring)|join(",")')" \
    "false,false,false,false"
expect_eq "publishable key: one gateway call for both" "$(($(pms) - P0))" 1
# a secret key sending the publishable key's Idempotency-Key does not get its record, nor
# the reverse: the secret key's record (with fingerprint and metadata) stays out of reach
out=$(treq "$I_SK1" "pk-$$-1" "$PB")
expect_eq "secret key, the publishable key's Idempotency-Key: a fresh token of its own" \
    "$(st "$out") $(replayed) $([ "$(jf "$out" .id)" != "$(jf "$p1" .id)" ] && echo new)" "201 fresh new"
out=$(treq "$I_PK" "checkout-$$-1" "$B" -H "origin: $I_SHOP")
expect_eq "publishable key, a secret key's Idempotency-Key and its exact body: no replay of it" \
    "$(st "$out") $(replayed) $(jf "$out" '[has("fingerprint"), has("metadata")]|map(tostring)|join(",")') $([ "$(jf "$out" .id)" != "$TOK" ] && echo new)" \
    "201 fresh false,false new"

# --- declines are kept, failures give the key back --------------------------------------------------------
A0=$(gs .adyen.payments)
d1=$(treq "$I_SKA" "decl-$$" "$(card 4000000000000069)")
d2=$(treq "$I_SKA" "decl-$$" "$(card 4000000000000069)")
expect_eq "adyen decline at tokenisation: 402 card_declined expired_card, then replayed" \
    "$(st "$d1") $(jf "$d1" '.code + " " + .decline_code') $(st "$d2") $(replayed)" \
    "402 card_declined expired_card 402 replayed"
expect_eq "decline replay: the same problem document" "$(sed '$d' <<<"$d2")" "$(sed '$d' <<<"$d1")"
expect_eq "decline replay: one zero-value authorisation at adyen" "$(($(gs .adyen.payments) - A0))" 1
A0=$(gs .adyen.payments)
e1=$(treq "$I_SKA" "err-$$" "$(card 4000000000000119)")
e2=$(treq "$I_SKA" "err-$$" "$(card 4000000000000119)")
expect_eq "gateway processing error: 502 both times, not replayed (the key was given back)" \
    "$(st "$e1") $(st "$e2") $(replayed)" "502 502 fresh"
expect_eq "... each retry reached the gateway" "$(($(gs .adyen.payments) - A0))" 2
out=$(treq "$I_SK1" "val-$$" '{"card":{"number":"4242424242424241","exp_month":3,"exp_year":'"$I_Y"',"cvc":"123"}}')
expect_eq "a refused body (422) keeps nothing" "$(st "$out")" 422
out=$(treq "$I_SK1" "val-$$" "$(card 4242424242424242 7)")
expect_eq "... the same key then tokenises another body" "$(st "$out") $(replayed)" "201 fresh"

# --- what the records hold ------------------------------------------------------------------------------
expect_eq "records: the client's key is never stored as sent (t: + keyed hash)" \
    "$(I_PSQL "SELECT count(*) FROM ledger.idempotency WHERE tenant_id IN ('$I_TEN', '$I_TEN_A') AND key !~ '^t:[0-9a-f]{64}\$'")" 0
expect_eq "records: no card number in a stored answer" \
    "$(I_PSQL "SELECT count(*) FROM ledger.idempotency WHERE response ~ '(4242424242424242|5555555555554444|4000000000000069|4000056655665556)'")" 0
tokend_stop I47
expect_true "tokend log: no test PAN, no Idempotency-Key" \
    bash -c "! grep -hE '4242424242424242|4000056655665556|checkout-$$-1|burst-$$' '$LOG_I47'"
