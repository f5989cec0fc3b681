# t_00_layout.sh - the tree's shape: no #include crosses a layer upwards (scripts/check-layers.sh,
# fed an upward include to show it fails), at most the four top-level files directly under
# service/, and a first build on a machine without the -dev packages (the compiler flags are
# read after `make deps` installed them).

if [ -n "${TOKEND_TEST_SANITIZER:-}" ]; then
    # the tree and an uninstrumented first build: nothing here runs sanitized code
    echo "  skip  layout and the fresh-machine build: nothing sanitized (checked by make test)"
    return
fi
L_DIR="$T_DIR/t00"
mkdir -p "$L_DIR"

out=$(scripts/check-layers.sh 2>&1)
expect_eq "layers: the tree has no upward include" "$?" 0
expect_match "layers: it says what it checked" "$out" '^layers: [0-9]+ includes checked, none upward'

expect_eq "layout: only the four top-level .c files directly under service/" \
    "$(cd service && ls -1 *.c | tr '\n' ' ')" "routes.c server.c tokenctl_main.c tokend_main.c "

# a copy of the tree with one upward include: core/buf.c reaching the vault
cp -r service include "$L_DIR/"
sed -i '0,/^#include "tokend\/core\/common.h"/s//#include "tokend\/core\/common.h"\n#include "tokend\/vault\/card.h"/' \
    "$L_DIR/service/core/buf.c"
out=$(scripts/check-layers.sh "$L_DIR" 2>&1)
expect_eq "layers: an upward include fails the check" "$?" 1
expect_match "layers: the failure names the file, line and both layers" "$out" \
    'service/core/buf\.c:[0-9]+: core includes "tokend/vault/card\.h" \(vault is above core\)'
cp service/core/buf.c "$L_DIR/service/core/buf.c"
# a header reaching the top (server.h) from a layer is upward too
printf '#include "tokend/server.h"\n' >>"$L_DIR/include/tokend/store/db.h"
out=$(scripts/check-layers.sh "$L_DIR" 2>&1)
expect_match "layers: a layer's header including the top fails" "$out" 'include/tokend/store/db\.h:[0-9]+: store includes "tokend/server\.h"'
cp include/tokend/store/db.h "$L_DIR/include/tokend/store/db.h"
mkdir -p "$L_DIR/service/misc" && touch "$L_DIR/service/misc/x.c"
out=$(scripts/check-layers.sh "$L_DIR" 2>&1)
expect_match "layers: a folder that is no layer fails" "$out" 'service/misc/ is not a known layer'
rm -rf "$L_DIR/service/misc"
out=$(scripts/check-layers.sh "$L_DIR" 2>&1)
expect_eq "layers: the restored copy passes again" "$?" 0

# First build on a fresh machine: a pkg-config that answers nothing until `apt-get install`
# has run, a dpkg that has nothing installed, an apt-get that only records it was called.
FAKE="$L_DIR/fakebin"
mkdir -p "$FAKE"
real_pc=$(command -v pkg-config)
cat >"$FAKE/pkg-config" <<PC
#!/bin/sh
[ -f "$L_DIR/installed" ] || exit 1
exec "$real_pc" "\$@"
PC
cat >"$FAKE/dpkg" <<'DP'
#!/bin/sh
exit 1
DP
cat >"$FAKE/apt-get" <<AG
#!/bin/sh
echo "apt-get \$*" >>"$L_DIR/apt.log"
case "\$1" in install) touch "$L_DIR/installed" ;; esac
exit 0
AG
cp "$FAKE/apt-get" "$FAKE/sudo" && printf '#!/bin/sh\nexec "$@"\n' >"$FAKE/sudo"
chmod +x "$FAKE"/*
cp -r Makefile sql "$L_DIR/"
goal=b/obj/service/store/db.o # libpq-fe.h: found only through pkg-config's -I
PATH="$FAKE:$PATH" make -C "$L_DIR" --no-print-directory BUILD=b BUILD_GOALS=$goal build \
    >"$L_DIR/build.log" 2>&1
rc=$?
expect_eq "fresh machine: make build installs, then compiles a libpq file (exit 0)" "$rc" 0
expect_true "fresh machine: the object was built" test -s "$L_DIR/$goal"
expect_match "fresh machine: apt-get install ran first" "$(cat "$L_DIR/apt.log" 2>/dev/null)" 'install .*libpq-dev'
# the control: the same build with the packages never installed fails at the missing header,
# so the passing run above did depend on the flags being read after deps
rm -rf "$L_DIR/b" "$L_DIR/installed"
printf '#!/bin/sh\nexit 0\n' >"$FAKE/apt-get"
PATH="$FAKE:$PATH" make -C "$L_DIR" --no-print-directory BUILD=b BUILD_GOALS=$goal build \
    >"$L_DIR/build2.log" 2>&1
expect_eq "fresh machine control: without the install the build fails" "$?" 2
expect_match "fresh machine control: at libpq-fe.h" "$(cat "$L_DIR/build2.log")" 'libpq-fe\.h'
rm -rf "$L_DIR"
