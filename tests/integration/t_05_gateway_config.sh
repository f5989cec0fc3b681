# t_05_gateway_config.sh - tokenctl gateway add/list/remove: credentials sealed,
# never printed or stored in the clear, bad input refused.

CTL=("$BUILD/tokenctl" --db "$T_ADMIN_DB" --master-key-file "$T_DIR/master.key")
TEN=$("${CTL[@]}" tenant create "gwcfg-$$" 2>/dev/null)
CRED="$T_DIR/stripe-cred.json"
(umask 077 && printf '{"api_key":"sk_test_gwcfgSECRET123","webhook_secret":"whsec_gwcfgSECRET456"}' >"$CRED")
GW=$("${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$CRED" --priority 10 \
    --base-url https://localhost:9 2>"$T_DIR/gw.err")
expect_match "gateway add prints the id" "$GW" '^gw_[0-9A-Za-z]{22}$'
out=$("${CTL[@]}" gateway list --tenant "$TEN" 2>&1)
expect_match "gateway list shows it" "$out" "$GW	$TEN	stripe	false	10	https://localhost:9"
expect_true "gateway list never shows credentials" bash -c "! grep -q SECRET <<<'$out'"
"$PG_BIN/pg_dump" -h "$T_DIR/pg/run" -U postgres tokend >"$T_DIR/gwdump.sql" 2>/dev/null
expect_true "credentials are not in pg_dump" bash -c "! grep -q gwcfgSECRET '$T_DIR/gwdump.sql'"
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM vault.gateways WHERE id = '$GW' AND length(credentials_sealed) > 41")
expect_eq "credentials stored sealed" "$n" "1"
chmod 644 "$CRED"
"${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$CRED" >/dev/null 2>&1
expect_eq "a world-readable credentials file is refused" "$?" "2"
chmod 600 "$CRED"
(umask 077 && printf '{"merchant_account":"M"}' >"$T_DIR/adyen-bad.json")
"${CTL[@]}" gateway add --tenant "$TEN" --kind adyen --credentials-file "$T_DIR/adyen-bad.json" >/dev/null 2>&1
expect_eq "adyen without api_key is refused" "$?" "2"
"${CTL[@]}" gateway add --tenant "$TEN" --kind paypal --credentials-file "$CRED" >/dev/null 2>&1
expect_eq "unknown kind is refused" "$?" "2"
"${CTL[@]}" gateway add --tenant "$TEN" --kind stripe --credentials-file "$CRED" --base-url http://localhost:9 >/dev/null 2>&1
expect_eq "a non-https base URL is refused" "$?" "2"
"${CTL[@]}" gateway add --tenant "$TEN" --kind sandbox --credentials-file "$CRED" --live >/dev/null 2>&1
expect_eq "a live sandbox is refused" "$?" "2"
"${CTL[@]}" gateway remove "$GW" 2>/dev/null
expect_eq "gateway remove" "$?" "0"
"${CTL[@]}" gateway remove "$GW" 2>/dev/null
expect_eq "removing twice fails" "$?" "1"
n=$(pg_psql "$T_DIR/pg" -tAc "SELECT count(*) FROM audit.events WHERE object = '$GW'")
expect_eq "add and remove are audited" "$n" "2"
