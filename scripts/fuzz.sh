#!/bin/sh
# fuzz.sh -- runs the libFuzzer targets built by `make fuzz` and prints a table.
#
#   scripts/fuzz.sh run   BINDIR SECONDS JOBS TARGET...   (make fuzz)
#   scripts/fuzz.sh check BINDIR SECONDS JOBS TARGET...   (make fuzz-check, in make test)
#
# run: each target fuzzes for SECONDS, one after the other, starting from
# its seed corpus tests/fuzz/corpus/TARGET (read only) and the inputs it
# found before (build/fuzz/corpus/TARGET, where new ones go); a crash's
# input is written to tests/fuzz/crashes/TARGET/ (git-ignored: copy it into
# the corpus with the fix).  JOBS > 1 runs libFuzzer's -fork=JOBS.
# check: first every file of every target's corpus goes through every
# target once (the corpora are each other's regression inputs too), then
# each target fuzzes for SECONDS from a scratch copy of its corpus;
# crashes go to build/fuzz/crashes/TARGET/.
# Either fails when a target crashed, with a one-line reproduction.
set -u

mode=${1:?usage: fuzz.sh run|check BINDIR SECONDS JOBS TARGET...}
bindir=${2:?bindir}
secs=${3:?seconds}
jobs=${4:?jobs}
shift 4
work=build/fuzz
mkdir -p "$work/logs"

failed=""
row() { printf '%-14s %7s %12s %9s %7s %7s %6s  %s\n' "$@"; }

# The numbers of a libFuzzer log: executions, exec/s, cov, ft, corpus size.
stats() {
	log=$1
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9][0-9]*\)[: ].*/\1/p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(sed -n 's/.* cov: \([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
	ft=$(sed -n 's/.* ft: \([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
	corp=$(sed -n 's/.* corp: \([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
	echo "${execs:-0} ${rate:--} ${cov:-0} ${ft:-0} ${corp:-0}"
}

# The input a crashed run left, from its log.
artifact() {
	sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1" | tail -n 1
}

if [ "$mode" = check ]; then
	# Every corpus file through every target, once.
	files=$(find tests/fuzz/corpus -type f | sort)
	for t in "$@"; do
		log="$work/logs/$t.replay.log"
		# shellcheck disable=SC2086
		if ! "$bindir/$t" $files >"$log" 2>&1; then
			echo "fuzz: $t failed replaying the corpora (log: $log):" >&2
			grep -E 'property failed|ERROR: |SUMMARY|Running: ' "$log" | tail -n 5 >&2
			failed="$failed $t"
		fi
	done
	echo "fuzz: replayed $(echo "$files" | wc -l) corpus files through $# targets"
fi

row target seconds executions exec/s cov ft corpus result
for t in "$@"; do
	bin="$bindir/$t"
	seeds="tests/fuzz/corpus/$t"
	log="$work/logs/$t.$mode.log"
	if [ ! -x "$bin" ]; then
		echo "fuzz: no target $t (have: $(ls "$bindir" | tr '\n' ' '))" >&2
		failed="$failed $t"
		continue
	fi
	if [ "$mode" = check ]; then
		corpus="$work/check/$t"
		crashes="$work/crashes/$t"
		rm -rf "$corpus"
	else
		corpus="$work/corpus/$t"
		crashes="tests/fuzz/crashes/$t"
	fi
	mkdir -p "$corpus" "$crashes" "$seeds"
	fork=""
	[ "$jobs" -gt 1 ] && fork="-fork=$jobs -ignore_crashes=0"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$crashes/" $fork "$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	read -r execs rate cov ft corp <<EOF
$(stats "$log")
EOF
	result=ok
	if [ $rc -ne 0 ]; then
		result="FAILED (log: $log)"
		failed="$failed $t"
	fi
	row "$t" "$secs" "$execs" "$rate" "$cov" "$ft" "$corp" "$result"
	if [ $rc -ne 0 ]; then
		grep -E 'property failed|ERROR: |SUMMARY' "$log" | head -n 3 | sed 's/^/    /'
		a=$(artifact "$log")
		[ -n "$a" ] && echo "    reproduce: $bin $a"
	fi
done

if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed" >&2
	exit 1
fi
exit 0
