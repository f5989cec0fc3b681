#!/usr/bin/env bash
# check-layers.sh - fails when an #include crosses a layer upwards.
#
# The layers of service/ and include/tokend/, lowest first (each may include its own and any
# lower one, never a higher one; service/*.c and include/tokend/*.h are the top and may
# include everything). Each folder's README.md says what it owns.
#
# Usage: scripts/check-layers.sh [ROOT]   (ROOT defaults to the repository; tests feed it a
# copy with an upward include to prove it fails). Prints one line per violation, exits 1.
set -euo pipefail
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
LAYERS=(core store http gateways vault events payments finance admin)

rank() { # FOLDER -> its index in LAYERS, or ${#LAYERS[@]} (the top)
    local i
    for i in "${!LAYERS[@]}"; do [ "${LAYERS[$i]}" = "$1" ] && { echo "$i"; return; }; done
    echo "${#LAYERS[@]}"
}

bad=0 n=0
while IFS= read -r -d '' file; do
    rel=${file#"$ROOT"/}
    case $rel in
    service/*/*) own=${rel#service/} ;;
    include/tokend/*/*) own=${rel#include/tokend/} ;;
    *) own=top/ ;;
    esac
    own=${own%%/*}
    own_rank=$(rank "$own")
    while IFS=: read -r line inc; do
        n=$((n + 1))
        inc_layer=${inc#tokend/}
        case $inc_layer in */*) inc_layer=${inc_layer%%/*} ;; *) inc_layer=top ;; esac
        if [ "$(rank "$inc_layer")" -gt "$own_rank" ]; then
            echo "layers: $rel:$line: $own includes \"$inc\" ($inc_layer is above $own)"
            bad=$((bad + 1))
        fi
    done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"(tokend\/[^"]+)".*/\1/p;=' "$file" |
        sed -n '/^[0-9]*$/{h;d};G;s/\n/:/;s/^\(.*\):\(.*\)$/\2:\1/p')
done < <(find "$ROOT/service" "$ROOT/include/tokend" -type f \( -name '*.c' -o -name '*.h' \) -print0)

# A layer folder that is not in LAYERS would be ranked as the top: refuse it instead.
for d in "$ROOT"/service/*/ "$ROOT"/include/tokend/*/; do
    f=$(basename "$d")
    [ "$f" = elements ] && continue
    [ "$(rank "$f")" -lt "${#LAYERS[@]}" ] || { echo "layers: $d is not a known layer"; bad=$((bad + 1)); }
done

if [ "$bad" -gt 0 ]; then
    echo "layers: $bad upward include(s); order, lowest first: ${LAYERS[*]}"
    exit 1
fi
echo "layers: $n includes checked, none upward (${LAYERS[*]})"
