# t_backup.sh - backups that restore (issue #17), sourced by tests/ha/run.sh on its Patroni
# cluster, whose WAL is archived by pgBackRest (archive-push) into a local repository: a full
# backup taken under load; a point-in-time restore of it into a new cluster at a moment after
# the backup; tokend started on that cluster charges a token stored before the backup, a token
# made after the restore point is not there, and `tokenctl audit verify` passes.

BR="$T_DIR/backrest"
mkdir -p "$BR/repo" "$BR/log" "$BR/lock" "$T_DIR/restore/run"
for n in node1 node2; do
    pv="HA_PORT_$n"
    cat >"$BR/$n.conf" <<CONF
[global]
repo1-path=$BR/repo
repo1-retention-full=2
log-path=$BR/log
lock-path=$BR/lock
log-level-console=warn
log-level-file=info
start-fast=y
compress-type=none
archive-timeout=60

[tokend]
pg1-path=$T_DIR/ha/$n/data
pg1-port=${!pv}
pg1-socket-path=$T_DIR/ha/$n/run
pg1-user=postgres
CONF
done
[ "$(id -u)" = 0 ] && chown -R postgres: "$BR" "$T_DIR/restore"
L=$(ha_leader)
br() { ha_as pgbackrest --config="$BR/$L.conf" --stanza=tokend "$@"; }

br stanza-create >>"$T_DIR/backrest.out" 2>&1
expect_eq "pgbackrest stanza-create" "$?" "0"
br check >>"$T_DIR/backrest.out" 2>&1
expect_eq "pgbackrest check: WAL archiving works from the primary ($L)" "$?" "0"

card() { printf '{"card":{"number":"%s","exp_month":6,"exp_year":%s,"cvc":"123"}}' "$1" "$H_Y"; }
out=$(api "$KEY" POST /v1/tokens "$(card 5555555555554444)")
TOKB=$(sed '$d' <<<"$out" | jq -r .id)
expect_eq "a token stored before the backup" "$(tail -n 1 <<<"$out")" "201"

# the full backup, under the tokenise + charge + refund load
rm -f "$T_DIR/stop" "$T_DIR"/load.*
bpids=()
for w in 1 2; do
    load_worker "$w" &
    bpids+=($!)
done
t0=$SECONDS
br --type=full backup >>"$T_DIR/backrest.out" 2>&1
rc=$?
touch "$T_DIR/stop"
wait "${bpids[@]}"
n_load=$(cat "$T_DIR"/load.* | awk '$3 == 201' | wc -l)
expect_eq "full backup under load ($n_load requests acknowledged meanwhile, $((SECONDS - t0)) s)" "$rc" "0"
expect_true "the load ran during the backup" [ "$n_load" -gt 0 ]

# the restore point: after a token made after the backup, before one made after it
out=$(api "$KEY" POST /v1/tokens "$(card 4000056655665556)")
TOKA=$(sed '$d' <<<"$out" | jq -r .id)
sleep 1.5
TARGET=$(ha_psql "$(ha_leader)" -tAc "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.5
out=$(api "$KEY" POST /v1/tokens "$(card 2223003122003222)")
TOKX=$(sed '$d' <<<"$out" | jq -r .id)
expect_eq "tokens after the backup, around the restore point $TARGET" \
    "$(tail -n 1 <<<"$out") ${TOKA:0:4} ${TOKX:0:4}" "201 tok_ tok_"
L=$(ha_leader)
br check >>"$T_DIR/backrest.out" 2>&1 # switches WAL and waits for it in the repository
expect_eq "the WAL past the restore point is archived" "$?" "0"

# restore at that point into a new cluster (its own port and socket, no archiving, no standby)
RPORT=$(free_port)
br --pg1-path="$T_DIR/restore/data" --type=time --target="$TARGET" --target-action=promote \
    restore >>"$T_DIR/backrest.out" 2>&1
expect_eq "pgbackrest restore --type=time into a new cluster" "$?" "0"
ha_as tee -a "$T_DIR/restore/data/postgresql.auto.conf" >/dev/null <<CONF
port = $RPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$T_DIR/restore/run'
archive_mode = off
synchronous_standby_names = ''
primary_conninfo = ''
hba_file = '$T_DIR/restore/data/pg_hba.conf'
ident_file = '$T_DIR/restore/data/pg_ident.conf'
CONF
ha_as cp "$T_DIR/ha/$L/data/pg_hba.conf" "$T_DIR/restore/data/pg_hba.conf" 2>/dev/null
[ -f "$T_DIR/restore/data/pg_ident.conf" ] || ha_as touch "$T_DIR/restore/data/pg_ident.conf"
ha_as "$PG_BIN/pg_ctl" -D "$T_DIR/restore/data" -l "$T_DIR/restore/postgres.log" -w -t 120 start >/dev/null
expect_eq "the restored cluster starts" "$?" "0"
rpsql() { PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$RPORT" -U postgres -d tokend "$@"; }
for _ in $(seq 1 200); do
    [ "$(rpsql -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
    sleep 0.2
done
expect_eq "it reached the restore point and was promoted" "$(rpsql -tAc 'SELECT pg_is_in_recovery()')" "f"
n=$(rpsql -tAc "SELECT count(*) FROM vault.tokens WHERE id IN ('$TOKB', '$TOKA')")
expect_eq "the tokens from before the restore point are there" "$n" "2"
n=$(rpsql -tAc "SELECT count(*) FROM vault.tokens WHERE id = '$TOKX'")
expect_eq "the token from after the restore point is not" "$n" "0"

T_SERVICE_DB_HA=$T_SERVICE_DB
T_SERVICE_DB="host=127.0.0.1 port=$RPORT user=tokend_service dbname=tokend"
tokend_start B --gateway-ca-file "$T_DIR/tls.crt" || fail "tokend starts on the restored cluster"
T_SERVICE_DB=$T_SERVICE_DB_HA
H2C_SAVED=$H2C
H2C="http://127.0.0.1:$H2C_B"
out=$(api "$KEY" POST /v1/charges "{\"token\":\"$TOKB\",\"amount\":2500,\"currency\":\"eur\"}")
expect_eq "restored: a token stored before the backup is charged" \
    "$(tail -n 1 <<<"$out") $(sed '$d' <<<"$out" | jq -r .status)" "201 succeeded"
H2C=$H2C_SAVED
tokend_stop B
"$BUILD/tokenctl" --db "host=127.0.0.1 port=$RPORT user=postgres dbname=tokend" \
    --master-key-file "$T_DIR/master.key" audit verify >"$T_DIR/verify.out" 2>&1
rc=$?
expect_eq "restored: tokenctl audit verify passes ($(head -n 1 "$T_DIR/verify.out"))" "$rc" "0"
expect_match "restored: the chain is intact" "$(cat "$T_DIR/verify.out")" 'chain intact'
ha_as "$PG_BIN/pg_ctl" -D "$T_DIR/restore/data" -m fast -w -t 30 stop >/dev/null 2>&1
