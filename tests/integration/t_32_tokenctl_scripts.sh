# t_32_tokenctl_scripts.sh - tokenctl for scripts: --json on every list and create command
# (parsed with jq, fields asserted, secrets still shown once and usable), and mistakes named
# in one line (an unknown command or option: exit 2, not the whole usage).

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
ERR="$T_DIR/t32.err"

# --- unknown command / option ---------------------------------------------------------------------
out=$("$BUILD/tokenctl" frobnicate 2>"$ERR")
expect_eq "unknown command: exit 2" "$?" 2
expect_eq "unknown command: one line naming it" "$(cat "$ERR")" "tokenctl: unknown command 'frobnicate' (see tokenctl --help)"
expect_eq "unknown command: nothing on stdout" "$out" ""
"$BUILD/tokenctl" --frobnicate tenant list 2>"$ERR"
expect_eq "unknown option: exit 2" "$?" 2
expect_eq "unknown option: one line naming it" "$(cat "$ERR")" "tokenctl: unknown option '--frobnicate' (see tokenctl --help)"
out=$("$BUILD/tokenctl" --help 2>/dev/null)
expect_eq "--help: exit 0" "$?" 0
expect_match "--help: the usage on stdout, with --json" "$out" '^usage: tokenctl .*--json'
"$BUILD/tokenctl" 2>"$ERR"
expect_eq "no command: usage, exit 2" "$?:$(head -c 15 "$ERR")" "2:usage: tokenctl"

# --- --json on the create commands -----------------------------------------------------------------
NAME="jsonco-$$"
out=$("${CTL[@]}" --json tenant create "$NAME" --bin 8 --cvc-optional 2>"$ERR")
expect_eq "tenant create --json: exit 0" "$?" 0
TEN=$(jq -r .id <<<"$out")
expect_match "tenant create --json: id" "$TEN" '^ten_'
expect_eq "tenant create --json: fields" "$(jq -c '[.name, .bin_mode, .cvc_optional]' <<<"$out")" "[\"$NAME\",8,true]"
expect_eq "tenant create --json: one document" "$(jq -s length <<<"$out")" 1

out=$("${CTL[@]}" key create --tenant "$NAME" --scopes tokens:write,charges:write --test --json 2>"$ERR")
expect_eq "key create --json (flag after the command): exit 0" "$?" 0
KEY=$(jq -r .secret <<<"$out")
expect_match "key create --json: the secret" "$KEY" '^sk_test_[0-9A-Za-z]{43}$'
expect_eq "key create --json: fields" "$(jq -c '[.tenant, .prefix, .publishable, .livemode, .scopes, .origins]' <<<"$out")" \
    "[\"$TEN\",\"sk_test_\",false,false,[\"tokens:write\",\"charges:write\"],[]]"
expect_eq "key create --json: hint is the secret's tail" "$(jq -r .hint <<<"$out")" "${KEY: -4}"
KID=$(jq -r .id <<<"$out")
expect_match "key create --json: key id" "$KID" '^key_'
out=$("${CTL[@]}" --json key create --tenant "$TEN" --publishable --origin https://shop.example --origin https://b.example 2>"$ERR")
expect_eq "publishable key --json: fields" "$(jq -c '[.publishable, .scopes, .origins]' <<<"$out")" \
    '[true,["tokens:create"],["https://shop.example","https://b.example"]]'

(umask 077; printf '{"webhook_secret":"whsec_t32"}' >"$T_DIR/t32-sbx.json")
out=$("${CTL[@]}" --json gateway add --tenant "$TEN" --kind sandbox --credentials-file "$T_DIR/t32-sbx.json" --priority 7 2>"$ERR")
GW=$(jq -r .id <<<"$out")
expect_match "gateway add --json: id" "$GW" '^gw_'
expect_eq "gateway add --json: fields" "$(jq -c '[.tenant, .kind, .livemode, .priority, .base_url]' <<<"$out")" "[\"$TEN\",\"sandbox\",false,7,null]"
expect_true "gateway add --json: no credential in the output" test "$(grep -c whsec_t32 <<<"$out")" = 0

out=$("${CTL[@]}" --json webhook add --tenant "$TEN" --url https://hooks.example/t32 2>"$ERR")
WE=$(jq -r .id <<<"$out")
expect_match "webhook add --json: id" "$WE" '^we_'
expect_match "webhook add --json: secret" "$(jq -r .secret <<<"$out")" '^whsec_'
expect_eq "webhook add --json: fields" "$(jq -c '[.tenant, .url, .livemode]' <<<"$out")" "[\"$TEN\",\"https://hooks.example/t32\",false]"

# the key printed as JSON works
tokend_start J || { fail "tokend starts"; return; }
Y=$(($(date -u +%Y) + 1))
st=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' \
    --data-binary "{\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":$Y}}" \
    "http://127.0.0.1:$H2C_J/v1/tokens")
expect_eq "the secret from key create --json authenticates" "$st" 201

# --- --json on the list commands -------------------------------------------------------------------
out=$("${CTL[@]}" --json tenant list 2>"$ERR")
expect_eq "tenant list --json: exit 0, an array" "$?:$(jq -r type <<<"$out")" "0:array"
expect_eq "tenant list --json: our tenant" "$(jq -c --arg id "$TEN" '.[]|select(.id==$id)|[.name,.bin_mode,.cvc_optional,(.created_at|test("^[0-9]{4}-"))]' <<<"$out")" \
    "[\"$NAME\",8,true,true]"
expect_eq "tenant list --json: as many rows as the table" "$(jq length <<<"$out")" "$("${CTL[@]}" tenant list | tail -n +2 | wc -l)"

out=$("${CTL[@]}" --json key list --tenant "$TEN" 2>"$ERR")
expect_eq "key list --json: both keys" "$(jq length <<<"$out")" 2
expect_eq "key list --json: fields" "$(jq -c --arg id "$KID" '.[]|select(.id==$id)|[.tenant,.prefix,.hint,.scopes,.origins,.livemode,.revoked_at]' <<<"$out")" \
    "[\"$TEN\",\"sk_test_\",\"${KEY: -4}\",[\"tokens:write\",\"charges:write\"],[],false,null]"
expect_true "key list --json: never a secret" test "$(grep -c "$KEY" <<<"$out")" = 0
"${CTL[@]}" key revoke "$KID" 2>/dev/null
expect_match "key list --json: revoked_at once revoked" \
    "$("${CTL[@]}" key list --tenant "$TEN" --json | jq -r --arg id "$KID" '.[]|select(.id==$id)|.revoked_at')" '^[0-9]{4}-'

out=$("${CTL[@]}" --json gateway list --tenant "$TEN" 2>"$ERR")
expect_eq "gateway list --json: fields" "$(jq -c '[.[]|[.id,.kind,.livemode,.priority,.base_url]]' <<<"$out")" "[[\"$GW\",\"sandbox\",false,7,null]]"
out=$("${CTL[@]}" --json webhook list --tenant "$TEN" 2>"$ERR")
expect_eq "webhook list --json: fields" "$(jq -c '[.[]|[.id,.tenant,.url,.livemode,.disabled_at]]' <<<"$out")" \
    "[[\"$WE\",\"$TEN\",\"https://hooks.example/t32\",false,null]]"
out=$("${CTL[@]}" --json key list --tenant "$("${CTL[@]}" tenant create "empty-$$" 2>/dev/null)" 2>"$ERR")
expect_eq "an empty list is []" "$out" "[]"

# a name that needs escaping survives the round trip
odd="q\"uo\\te-$$"
"${CTL[@]}" tenant create "$odd" >/dev/null 2>&1
expect_eq "tenant list --json: names are escaped" "$("${CTL[@]}" --json tenant list | jq -r --arg n "$odd" '[.[]|select(.name==$n)]|length')" 1

# --json where it means nothing is refused, naming the command
"${CTL[@]}" --json audit verify >/dev/null 2>"$ERR"
expect_eq "--json on audit verify: exit 2" "$?" 2
expect_eq "--json on audit verify: says why" "$(cat "$ERR")" "tokenctl: --json is for the list and create commands and audit report, not 'audit verify'"
