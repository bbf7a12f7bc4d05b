#!/usr/bin/env bash
# The bash completion of every command: sourced in a clean bash, each command registered with its
# function (complete -p), and the function called with COMP_WORDS set offers the right words.
# usage: completions.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The commands as the user would call them, by their installed names.
link() { [ -x "$2" ] && ln -s "$(readlink -f "$2")" "$tmp/$1"; return 0; }
link cloudmon "$build/monitor/cloudmon"
link sparkdev "$build/firmware/sparkdev"
link sparkcloud "$build/firmware/sparkcloud"
if [ -x "$build/keyring/tool/sparkkeys" ]; then
    link sparkkeys "$build/keyring/tool/sparkkeys"
else
    link sparkkeys "$build/keyring/tool/keyring"      # the key command before its rename
fi
mkdir "$tmp/keys.d" && touch "$tmp/keyfile.txt" "$tmp/kitchen.pcapng"

PATH="$tmp:$PATH" SRC="$src" TMPD="$tmp" bash --norc --noprofile <<'INNER'
set -u
fails=0
source "$SRC/completions/sparkwire.bash"
# expect CMD FUNCTION: the registration
registered() {
    local line
    line=$(complete -p "$1" 2>&1) || { echo "FAIL: no completion registered for $1"; fails=$((fails + 1)); return; }
    [[ $line == "complete -F $2 $1" ]] || { echo "FAIL: $1 registered as '$line'"; fails=$((fails + 1)); }
}
# offers 'WORDS...' -- WORD...: COMPREPLY for the words line (last word = the one completed) holds each
offers() {
    local words=() want=() before=$fails
    while [ "$1" != -- ]; do words+=("$1"); shift; done
    shift
    want=("$@")
    COMP_WORDS=("${words[@]}")
    COMP_CWORD=$((${#words[@]} - 1))
    COMP_LINE="${words[*]}"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    local fn
    fn=$(complete -p "${words[0]}" | sed -E 's/.*-F ([^ ]+) .*/\1/')
    "$fn" "${words[0]}" "${words[COMP_CWORD]}" "${words[COMP_CWORD-1]:-}"
    for w in "${want[@]}"; do
        local hit=0
        for r in "${COMPREPLY[@]}"; do [[ $r == "$w" ]] && hit=1; done
        if ((hit == 0)); then
            echo "FAIL: '${words[*]}' does not offer '$w' (offers: ${COMPREPLY[*]:-nothing})"
            fails=$((fails + 1))
        fi
    done
    for r in "${COMPREPLY[@]}"; do
        [[ $r == "${words[COMP_CWORD]}"* ]] || { echo "FAIL: '${words[*]}' offers '$r'"; fails=$((fails + 1)); }
    done
    ((fails > before)) || echo "ok: '${words[*]}' -> ${COMPREPLY[*]:-nothing}"
}
none() {
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
    local fn; fn=$(complete -p "$1" | sed -E 's/.*-F ([^ ]+) .*/\1/')
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    ((${#COMPREPLY[@]} == 0)) || { echo "FAIL: '$*' offers ${COMPREPLY[*]} where a value is typed"; fails=$((fails + 1)); }
}
# The options CMD --help lists, one a line with 1 when the next word is its value, 0 when it takes none
# ("-x, --long VALUE  text" or "--long VALUE  text": one space before the value, two before the text).
help_options() {
    local line short long v re='^ +(-[A-Za-z], +)?(--[A-Za-z0-9-]+)(.*)$'
    "$1" --help 2>&1 | while IFS= read -r line; do
        [[ $line =~ $re ]] || continue
        short=${BASH_REMATCH[1]%%,*} long=${BASH_REMATCH[2]} v=0
        [[ ${BASH_REMATCH[3]} =~ ^\ [^\ ] ]] && v=1
        [[ -n $short ]] && echo "$short $v"
        echo "$long $v"
    done
}
# follows_help CMD: after each option that takes a value, "-" is completed as a value (no option offered);
# after each one that takes none, as the next option (--help among them). So an option added to --help
# without its place in the completion, or left there after it changed, fails here.
follows_help() {
    local opt v fn before=$fails n=0
    fn=$(complete -p "$1" | sed -E 's/.*-F ([^ ]+) .*/\1/')
    while read -r opt v; do
        n=$((n + 1))
        COMP_WORDS=("$1" "$opt" -); COMP_CWORD=2; COMPREPLY=()
        "$fn" "$1" - "$opt"
        if ((v)) && [[ " ${COMPREPLY[*]} " == *" -"* ]]; then
            echo "FAIL: $1 $opt takes a value (--help) but the completion offers options after it"
            fails=$((fails + 1))
        elif ((!v)) && [[ " ${COMPREPLY[*]} " != *" --help "* ]]; then
            echo "FAIL: $1 $opt takes no value (--help) but the completion offers no option after it"
            fails=$((fails + 1))
        fi
    done < <(help_options "$1")
    ((n > 10)) || { echo "FAIL: $1 --help lists only $n options"; fails=$((fails + 1)); }
    ((fails > before)) || echo "ok: $1: the completion follows the $n options of --help"
}
cd "$TMPD"
for c in cloudmon sparkdev sparkcloud; do
    command -v "$c" >/dev/null && follows_help "$c"
done
for c in cloudmon sparkkeys sparkdev sparkcloud; do
    registered "$c" "_sparkwire_$c"
done
if command -v cloudmon >/dev/null; then
    offers cloudmon --key -- --keyfile
    offers cloudmon --js -- --json
    offers cloudmon - -- -r -k -w --help --version
    offers cloudmon -k key -- keyfile.txt keys.d
    none cloudmon --duration ""
    none cloudmon --cloud-port ""
    offers cloudmon -p - -- -r -k -w    # -p takes no value (no promiscuous mode, as tcpdump's)
fi
if command -v sparkkeys >/dev/null; then
    offers sparkkeys "" -- show match check import new
    offers sparkkeys ch -- check
    offers sparkkeys import --la -- --layout
    offers sparkkeys import --layout "" -- core dct
    offers sparkkeys new --out k -- keys.d
    offers sparkkeys show --role dev -- device device-public
    offers sparkkeys check key -- keyfile.txt
    offers sparkkeys check keyfile.txt k -- kitchen.pcapng keys.d   # check KEYFILE CAPTURE: no keyfile.txt
fi
if command -v sparkdev >/dev/null; then
    offers sparkdev --gen -- --generation
    offers sparkdev --generation "" -- g1 g2 g3
    offers sparkdev --stop-after s -- session-block
    offers sparkdev --on-fail "" -- close hold
    offers sparkdev --ver -- --version
    offers sparkdev --keyfile key -- keyfile.txt
    none sparkdev --id ""
    none sparkdev --hello-timeout ""
fi
if command -v sparkcloud >/dev/null; then
    offers sparkcloud --capt -- --captive-portal
    offers sparkcloud --ver -- --version
    offers sparkcloud --keys-dir k -- keys.d
    offers sparkcloud --ota key -- keyfile.txt
    none sparkcloud --connections ""
    none sparkcloud --hello-timeout ""
fi
echo "$fails failures"
exit $((fails > 0))
INNER
