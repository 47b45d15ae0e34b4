#!/bin/sh
# tests/run-unit.sh — run each unit-test program, then print one closing line over all of
# them: "unit: N passed, N failed". A program that crashes counts as a failure.
passed=0 failed=0 bad=""
for t in "$@"; do
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
		failed=$((failed + 1))
		bad="$bad $t(exit $rc)"
	fi
done
[ -n "$bad" ] && echo "programs that failed without a cmocka summary:$bad"
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
