#!/bin/sh
# gen-iin-rows.sh IN - prints the ROW(...) lines of service/vault/iin_table.c from
# service/vault/iin_ranges.tsv (the Makefile writes them to $(BUILD)/gen/iin_rows.h).
# Fails on a malformed row, so a typo in the data file breaks the build, not a lookup.
set -eu
awk '
function fail(msg) { printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"; bad = 1; exit 1 }
/^[ \t]*(#|$)/ { next }
{
    if (NF != 5) fail("want 5 columns: brand low high lengths source")
    if ($1 !~ /^[a-z]+$/) fail("bad brand " $1)
    if ($2 !~ /^[0-9]+$/ || $3 !~ /^[0-9]+$/ || length($2) != length($3) || length($2) > 8)
        fail("low and high: 1-8 digits, the same number of each")
    if ($2 + 0 > $3 + 0) fail("low > high")
    if ($4 !~ /^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$/) fail("bad lengths " $4)
    if ($5 !~ /^[a-z0-9]+$/) fail("bad source " $5)
    n = split($4, parts, ",")
    lens = ""
    for (i = 1; i <= n; i++) {
        if (split(parts[i], ab, "-") == 2) l = "LENS(" ab[1] ", " ab[2] ")"
        else l = "LEN(" parts[i] ")"
        lens = lens (i > 1 ? " | " : "") l
    }
    printf "    ROW(%s, %s, %s, %d, %s, \"%s\"),\n", toupper($1), $2 + 0, $3 + 0, length($2), lens, $5
}
END { if (!bad && NR == 0) { print "empty table" > "/dev/stderr"; exit 1 } }
' "$1"
