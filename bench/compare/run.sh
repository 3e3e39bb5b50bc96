#!/usr/bin/env bash
# Runs this module's benchmarks the way README.md reports them and prints
# the tables. Rounds are interleaved (the whole default suite, then the
# jsonv2 suite, ROUNDS times) so that load from other work on the machine
# spreads over every benchmark instead of hitting a few; the tables give the
# median over rounds.
#
#   ./run.sh                       # ROUNDS=3 BENCHTIME=1s, ≈ 10 min on 2 cores
#   ROUNDS=1 BENCHTIME=100ms ./run.sh   # ≈ 2 min smoke run
#
# Output: results/default.txt, results/jsonv2.txt (raw `go test -bench`),
# results/machine.txt and results/tables.md.
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-3}
BENCHTIME=${BENCHTIME:-1s}
mkdir -p results
# The module builds against the parent repository's working tree (replace
# => ../..), so a change there during the run (exchangeinfo, fixtures.Grow)
# would mix two versions in one table: record its state at both ends.
tree_state() {
	if git -C ../.. rev-parse HEAD >/dev/null 2>&1; then
		echo "$(git -C ../.. rev-parse --short HEAD), $(git -C ../.. status --porcelain -- . ':!bench/compare' | wc -l) changed files outside bench/compare"
	else
		echo "not a git checkout; $(cat ../../.snapshot 2>/dev/null || echo unknown)"
	fi
}
: >results/default.txt
: >results/jsonv2.txt
{
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "go: $(go version)"
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "symcache at start: $(tree_state)"
	echo "rounds: $ROUNDS, benchtime: $BENCHTIME"
} >results/machine.txt
# Correctness first: no numbers for libraries that decode differently.
go test -count=1 ./...
GOEXPERIMENT=jsonv2 go test -count=1 .
for round in $(seq "$ROUNDS"); do
	echo "round $round/$ROUNDS: default build" >&2
	go test -run '^$' -bench . -benchtime "$BENCHTIME" -count 1 . | tee -a results/default.txt >/dev/null
	echo "round $round/$ROUNDS: GOEXPERIMENT=jsonv2 build" >&2
	# Only what the experiment changes: encoding/json (re-implemented on top
	# of v2 in this build) and v2 itself, with parse and clone as the
	# same-run baselines.
	GOEXPERIMENT=jsonv2 go test -run '^$' -bench '^Benchmark(Decode|Valid|Encode)$/^lib=(std|v2|parse|clone)$/' \
		-benchtime "$BENCHTIME" -count 1 . | tee -a results/jsonv2.txt >/dev/null
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>results/machine.txt
echo "symcache at end: $(tree_state)" >>results/machine.txt
if [ "$(sed -n 's/^symcache at start: //p' results/machine.txt)" != "$(sed -n 's/^symcache at end: //p' results/machine.txt)" ]; then
	echo "run.sh: WARNING: the repository changed during the run; the tables may mix two versions" >&2
fi
go run ./cmd/tables default=results/default.txt jsonv2=results/jsonv2.txt | tee results/tables.md
