# t_31_packaging.sh - docker/ and packaging/ as far as they can be checked here: there is no
# container engine on the test machines, and systemd is not PID 1 (docker/README.md,
# packaging/README.md).

P_DIR="$T_DIR/t31"
mkdir -p "$P_DIR"

# --- docker/ --------------------------------------------------------------------------------------
if [ -x tests/docker/node_modules/.bin/dockerfilelint ]; then
    out=$(tests/docker/node_modules/.bin/dockerfilelint -c tests/docker docker/Dockerfile 2>&1)
    expect_eq "dockerfilelint passes" "$?" "0" || printf '%s\n' "$out" >&2
    expect_match "dockerfilelint found no issue" "$out" 'Issues: None found'
else
    fail "dockerfilelint is installed (run: make lint-deps)"
fi
# the Debian packages of the libraries tokend links to (not the sanitizers' runtime, not libc)
needed=$(for l in $(readelf -d "$BUILD/tokend" | sed -nE 's/.*Shared library: \[(.*)\]/\1/p'); do
    dpkg -S "*/$l" 2>/dev/null | head -n 1 | cut -d: -f1; done | grep -Ev '^(libc6|libasan[0-9]*|libubsan[0-9]*|libgcc-s1|libstdc\+\+6)$' | sort -u)
expect_match "tokend's libraries map to packages" "$(tr '\n' ' ' <<<"$needed")" 'libpq5 .*libsodium23'
out=$(python3 tests/docker/check_docker.py . $needed 2>&1)
expect_match "Dockerfile and compose.yaml checks (tests/docker/check_docker.py)" "$?:$out" '^0:docker: [0-9]+ checks passed$'

# the checker fails when it should: a copy of the tree with broken docker files
mk_root() { rm -rf "$P_DIR/r" && mkdir -p "$P_DIR/r" && cp -r docker "$P_DIR/r/" &&
    for f in Makefile include service sql docs tests; do ln -s "$PWD/$f" "$P_DIR/r/$f"; done; }
mk_root && sed -i 's#^COPY sql/ sql/#COPY sql/ sql/\nCOPY nosuchdir/ nosuchdir/#' "$P_DIR/r/docker/Dockerfile"
expect_match "a COPY of a missing path fails" "$(python3 tests/docker/check_docker.py "$P_DIR/r" $needed)" \
    'COPY nosuchdir/: no such path'
mk_root && sed -i 's#libcurl4 ca-certificates curl#libcurl4 ca-certificates curl gcc#' "$P_DIR/r/docker/Dockerfile"
expect_match "a compiler in the final image fails" "$(python3 tests/docker/check_docker.py "$P_DIR/r" $needed)" \
    'stage tokend installs build tools: gcc'
mk_root && sed -i 's#^USER 10001:10001#USER root#' "$P_DIR/r/docker/Dockerfile"
expect_match "root in the final image fails" "$(python3 tests/docker/check_docker.py "$P_DIR/r" $needed)" 'stage gwsim runs as root'
mk_root && sed -i 's# libsodium23 # #' "$P_DIR/r/docker/Dockerfile"
expect_match "a missing runtime library fails" "$(python3 tests/docker/check_docker.py "$P_DIR/r" $needed)" 'lacks the runtime packages.*libsodium23'
mk_root && sed -i 's#^  tokend:#  tokend_x:#' "$P_DIR/r/docker/compose.yaml"
expect_match "compose without tokend fails" "$(python3 tests/docker/check_docker.py "$P_DIR/r" $needed)" 'no service tokend'
mk_root && printf 'services: [\n' >"$P_DIR/r/docker/compose.yaml"
expect_match "invalid YAML fails" "$(python3 tests/docker/check_docker.py "$P_DIR/r" $needed 2>&1)" 'yaml'

# --- packaging/tokend.service ---------------------------------------------------------------------
UNIT=packaging/tokend.service
for want in 'User=tokend' 'Group=tokend' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'PrivateTmp=yes' \
    'MemoryDenyWriteExecute=yes' 'CapabilityBoundingSet=' 'SystemCallFilter=@system-service' \
    'LimitCORE=0' 'ProtectHome=yes' 'PrivateDevices=yes' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
    'AmbientCapabilities=' 'SystemCallArchitectures=native'; do
    expect_true "unit: $want" grep -qxF "$want" "$UNIT"
done
expect_eq "unit: no other User= or capability line" \
    "$(grep -cE '^(User|CapabilityBoundingSet|AmbientCapabilities)=' "$UNIT")" "3"
if command -v systemd-analyze >/dev/null; then
    # the binary must exist for verify: the built one ($BUILD is absolute in run.sh)
    sed "s#^ExecStart=/usr/local/bin/tokend#ExecStart=$BUILD/tokend#" "$UNIT" >"$P_DIR/tokend.service"
    out=$(systemd-analyze verify "$P_DIR/tokend.service" 2>&1)
    expect_eq "systemd-analyze verify: clean" "$?:$out" "0:"
    printf 'NoSuchSetting=1\n' >>"$P_DIR/tokend.service"
    out=$(systemd-analyze verify "$P_DIR/tokend.service" 2>&1)
    expect_match "systemd-analyze verify: an unknown key is reported" "$out" "Unknown key 'NoSuchSetting'"
    out=$(systemd-analyze security --offline=yes "$UNIT" 2>&1)
    score=$(sed -nE 's/.*Overall exposure level for tokend\.service: ([0-9.]+).*/\1/p' <<<"$out")
    expect_true "systemd-analyze security: exposure $score <= 1.5" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 1.5) }'
    expect_match "packaging/README.md records that score" "$(cat packaging/README.md)" "reports \*\*$score OK\*\*"
else
    fail "systemd-analyze is installed (Debian: systemd)"
fi
