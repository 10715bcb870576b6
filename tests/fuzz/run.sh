#!/bin/sh
# run.sh SECONDS [--update]: builds the fuzz targets (build.sh) and runs
# each for SECONDS on a copy of its seed corpus, after replaying the
# reproducers in crashes/TARGET/. Prints one line per target with the
# executions and whether it crashed; exits 1 if any did, keeping the
# artifact and the log. With --update, new inputs that add coverage are
# merged into corpus/TARGET (libFuzzer -merge=1); without it the repository
# is left as it was. FUZZ_BUILD reuses a build directory made by build.sh.
set -u

usage() { echo "usage: $0 SECONDS [--update]" >&2; exit 2; }
[ $# -ge 1 ] || usage
secs=$1
update=0
[ "${2:-}" = --update ] && update=1
case $secs in ''|*[!0-9]*) usage ;; esac

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/handoff-fuzz.XXXXXX") || exit 1
keep=0
trap '[ "$keep" = 1 ] || rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

build=${FUZZ_BUILD:-$tmp/build}
if [ ! -x "$build/fuzz_message" ] || [ ! -x "$build/fuzz_recv" ]; then
	"$here/build.sh" "$build" >"$tmp/build.log" 2>&1 || {
		cat "$tmp/build.log" >&2
		echo "run.sh: build failed" >&2
		exit 1
	}
fi

# The reason of a crash, without stack frames and progress lines.
reason() { grep -av -e '^ *#[0-9]' -e '^#' -e '^INFO:' "$1" | tail -n 20; }

crashed=0
for target in message recv; do
	bin=$build/fuzz_$target
	work=$tmp/$target
	mkdir -p "$work/corpus" "$work/artifacts"
	cp "$here/corpus/$target/"* "$work/corpus/"

	# Reproducers of bugs found before must pass.
	if [ -d "$here/crashes/$target" ] &&
	    [ -n "$(ls "$here/crashes/$target")" ]; then
		if ! "$bin" "$here/crashes/$target/"* >"$work/replay.log" 2>&1; then
			reason "$work/replay.log"
			echo "fuzz_$target: CRASH replaying crashes/$target (log kept in $work/replay.log)"
			crashed=1 keep=1
			continue
		fi
	fi

	"$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
	    -artifact_prefix="$work/artifacts/" "$work/corpus" \
	    >"$work/fuzz.log" 2>&1
	status=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")
	artifact=$(ls "$work/artifacts" 2>/dev/null | head -n 1)
	if [ "$status" != 0 ] || [ -n "$artifact" ]; then
		reason "$work/fuzz.log"
		echo "fuzz_$target: CRASH after ${execs:-?} executions in $secs s (exit $status): $work/artifacts/$artifact, log $work/fuzz.log"
		crashed=1 keep=1
		continue
	fi
	echo "fuzz_$target: ${execs:-?} executions in $secs s, no crash"

	if [ "$update" = 1 ]; then
		"$bin" -merge=1 "$here/corpus/$target" "$work/corpus" \
		    >"$work/merge.log" 2>&1 || {
			tail -n 20 "$work/merge.log"
			echo "fuzz_$target: merge into corpus/$target failed"
			crashed=1 keep=1
			continue
		}
		echo "fuzz_$target: corpus/$target has $(ls "$here/corpus/$target" | wc -l) inputs"
	fi
done
[ "$keep" = 1 ] && echo "kept $tmp"
exit "$crashed"
