#!/bin/sh
# run-unit.sh -- runs every cmocka test binary in a directory, optionally
# under valgrind; fails if any test fails or valgrind finds a leak or error.
set -u
vg=""
if [ "${1:-}" = "--valgrind" ]; then
	vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --track-fds=no"
	shift
fi
dir=${1:?usage: run-unit.sh [--valgrind] DIR}
pass=0
fail=0
for t in "$dir"/test_*; do
	[ -x "$t" ] || continue
	if $vg "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $t" >&2; fi
done
label="unit${vg:+ (valgrind)} $dir:"
echo "$label $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
