#!/bin/sh
# Regenerate (or, with --check, verify) the EF_ parameter reference in the README: the text
# between the params markers is `stackdump doc --markdown`, which comes from env/params.def.
set -eu
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
if [ $# -ne 2 ]; then
	echo "usage: $0 [--check] STACKDUMP README.md" >&2
	exit 2
fi
stackdump=$1 readme=$2
begin='<!-- params:begin -->'
end='<!-- params:end -->'
for m in "$begin" "$end"; do
	if [ "$(grep -cxF -- "$m" "$readme")" != 1 ]; then
		echo "$readme: needs exactly one line '$m'" >&2
		exit 1
	fi
done
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.doc"' EXIT
"$stackdump" doc --markdown >"$tmp.doc"
awk -v b="$begin" -v e="$end" -v doc="$tmp.doc" '
	$0 == b { print; while ((getline l < doc) > 0) print l; skip = 1; next }
	$0 == e { skip = 0 }
	!skip { print }' "$readme" >"$tmp"
if [ $check = 1 ]; then
	if ! cmp -s "$tmp" "$readme"; then
		echo "$readme parameter reference is stale: run make docs" >&2
		exit 1
	fi
	exit 0
fi
cmp -s "$tmp" "$readme" || cat "$tmp" >"$readme"
