#!/usr/bin/env bash
# Every installed program has a man page in the one footer style, answers --help and --version, and
# nothing in the repository points to documents outside it.
# usage: manpages.sh SOURCE_ROOT BUILD_ROOT
set -uo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# what meson installs, as the package will hold it
DESTDIR="$tmp/root" meson install -C "$build" --no-rebuild --only-changed >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "meson install"; }
bins=$(find "$tmp/root" -path '*/bin/*' -type f -printf '%f\n' | sort)
[ -n "$bins" ] || fail "nothing installed in a bin folder"
footer='"2026" "sparkwire" "sparkwire manual"'
for b in $bins; do
    page=$(find "$tmp/root" -path "*/man1/$b.1" | head -n 1)
    if [ -z "$page" ]; then
        fail "$b has no man page"
        continue
    fi
    th=$(head -n 1 "$page")
    upper=$(echo "$b" | tr a-z A-Z)
    [ "$th" = ".TH $upper 1 $footer" ] || fail "$page: header '$th', want '.TH $upper 1 $footer'"
    if command -v groff >/dev/null; then
        warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
        [ -z "$warn" ] || fail "$page: groff warns: $warn"
    fi
    exe=$(find "$tmp/root" -path "*/bin/$b" | head -n 1)
    out=$("$exe" --version 2>&1) || fail "$b --version exits $?"
    [[ $out == "$b (sparkwire) "* ]] ||
        fail "$b --version prints '$out'"
    out=$("$exe" --help 2>&1) || fail "$b --help exits $?"
    grep -q -- '--version' <<<"$out" || fail "$b --help does not list --version"
    echo "ok: $b (man page, --help, --version)"
done

# nothing points outside the repository (the CI script aside)
cd "$src"
names='DESIGN|PROTOCOL'          # the reference documents by name (pieces, so this line does not match)
pattern="shared/($names)|\\.\\./shared|($names)\\.md"
if [ -e .git ] && command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
    hits=$(git grep -n -I -E "$pattern" -- . ':!.ci' | head -n 20)
else
    hits=$(grep -rnI -E "$pattern" --exclude-dir=.ci --exclude-dir='build*' . | head -n 20)
fi
[ -z "$hits" ] || fail "pointers to documents outside the repository:"$'\n'"$hits"
for d in docs/protocol.md docs/design.md; do
    [ -s "$d" ] || fail "$d is missing"
done
echo "$fails failures"
exit $((fails > 0))
