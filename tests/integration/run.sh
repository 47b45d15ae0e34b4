#!/bin/bash
# tests/integration/run.sh BUILD — every tests/integration/test_*.sh against the programs in
# BUILD (`make integration`, part of `make check`). Each script prints one line per case;
# this adds a final "integration: N passed, M failed" and exits 1 on any failure. A failed
# case leaves its outputs and stackdump under BUILD/tests/integration/failed/.
set -euo pipefail

build=${1:-build}
here=$(dirname "$0")
passed=0
failed=0
skipped=0
start=$(date +%s)
rm -rf "$build/tests/integration/failed" 2> /dev/null || true

for t in "$here"/test_*.sh; do
	out=$(mktemp /tmp/onrit-run.XXXXXX)
	t0=$(date +%s)
	rc=0
	# the script's lines as they come, and kept for the count; its exit status from PIPESTATUS
	"$t" "$build" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
	ok=$(grep -c '^ok ' "$out" || true)
	bad=$(grep -c '^FAILED ' "$out" || true)
	if grep -q '^skip ' "$out"; then
		skipped=$((skipped + 1))
	elif [ "$rc" != 0 ] && [ "$bad" = 0 ]; then
		echo "FAILED $(basename "$t"): exit $rc without a result line"
		bad=1
	fi
	rm -f "$out"
	passed=$((passed + ok))
	failed=$((failed + bad))
	echo "# $(basename "$t"): $ok passed, $bad failed in $(($(date +%s) - t0)) s"
done
echo "integration: $passed passed, $failed failed$([ $skipped = 0 ] || echo ", $skipped scripts skipped") in $(($(date +%s) - start)) s"
[ "$failed" = 0 ]
