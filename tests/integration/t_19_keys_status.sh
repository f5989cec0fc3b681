# t_19_keys_status.sh - `tokenctl keys status`: each tenant's key versions and how many rows
# use each, so an operator sees when a version can be retired (issue #18).

OUT="$T_DIR/t32.out"
ERR="$T_DIR/t32.err"
CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "keys-$$" 2>/dev/null)
KEY=$("${CTL[@]}" key create --tenant "$TEN" --scopes tokens:write --test 2>/dev/null)
tokend_start K32 || { fail "tokend starts"; return; }
NEXT_YEAR=$(($(date -u +%Y) + 1))
for c in 4242424242424242 5555555555554444; do
    curl -s --http2-prior-knowledge -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
        --data-binary "{\"card\":{\"number\":\"$c\",\"exp_month\":12,\"exp_year\":$NEXT_YEAR,\"cvc\":\"123\"}}" \
        -o /dev/null "http://127.0.0.1:$H2C_K32/v1/tokens"
done
tokend_stop K32
# an older version no row uses any more (as a finished rotation leaves it)
pg_psql "$T_DIR/pg" -c "INSERT INTO vault.tenant_keys (tenant_id, version, wrapped_dek, wrapped_fpk, state, master_version)
    SELECT tenant_id, 2, wrapped_dek, wrapped_fpk, 'retired', master_version FROM vault.tenant_keys WHERE tenant_id = '$TEN'" >/dev/null
MV=$(pg_psql "$T_DIR/pg" -tAc "SELECT master_version FROM vault.tenant_keys WHERE tenant_id = '$TEN' AND version = 1")
"${CTL[@]}" keys status --tenant "keys-$$" >"$OUT" 2>"$ERR"
expect_eq "keys status exits 0" "$?" 0
refs=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.gateway_refs WHERE tenant_id = '$TEN' AND key_version = 1")
expect_eq "one line per version: state, the rows using it, its master key version, no rotation" \
    "$(cut -f1-4,6- "$OUT")" \
"tenant	name	version	state	tokens	gateway_refs	gateways	webhooks	master_version	rotation
$TEN	keys-$$	1	active	2	$refs	0	0	$MV	-
$TEN	keys-$$	2	retired	0	0	0	0	$MV	-"
"${CTL[@]}" keys status >"$OUT" 2>"$ERR"
expect_eq "without --tenant: every tenant's versions" "$?|$(grep -c "^$TEN	" "$OUT")" "0|2"
"${CTL[@]}" keys status --tenant nobody-$$ >"$OUT" 2>"$ERR"
expect_eq "unknown tenant: exit 1, named" "$?|$(cat "$ERR")" "1|tokenctl: keys status: no such tenant: nobody-$$"
"${CTL[@]}" keys frobnicate >"$OUT" 2>"$ERR"
expect_eq "unknown subcommand: usage, exit 2" "$?|$(cat "$ERR")" "2|tokenctl: usage: keys status [--tenant T | --master] | keys new-master (--out FILE | --pkcs11 URI) | keys rotate-master (--new-master-key-file FILE | --new-master-key-pkcs11 URI) | keys rotate-data --tenant T | keys rotate-fingerprint --tenant T --yes-break-dedup | keys retire --tenant T --version N | keys retire-master --version N | keys hsm-init (with --master-key-pkcs11 URI)"
pg_psql "$T_DIR/pg" -c "DELETE FROM vault.tenant_keys WHERE tenant_id = '$TEN' AND version = 2" >/dev/null
