#!/bin/sh
# The libFuzzer targets of tests/fuzz (message parser; receive path with
# ancillary data) build and run for FUZZ_SECONDS each (default 15) on their
# seed corpus without a crash, a sanitizer report or an fd leak, after
# replaying the reproducers in tests/fuzz/crashes. Skipped, saying why,
# without clang, libFuzzer or jansson's pkg-config file. Longer runs:
# tests/fuzz/run.sh SECONDS.
. "$(dirname "$0")/../lib.sh"

FUZZ="$top_srcdir/tests/fuzz"
secs=${FUZZ_SECONDS:-15}

command -v clang >/dev/null 2>&1 || skip "clang not installed (apt-get install clang)"
pkg-config --exists jansson 2>/dev/null || skip "pkg-config cannot find jansson"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ return 0; }\n' >"$T/probe.c"
clang -fsanitize=fuzzer,address,undefined -o "$T/probe" "$T/probe.c" \
    >"$T/probe.log" 2>&1 ||
    skip "clang cannot link -fsanitize=fuzzer,address,undefined (apt-get install libclang-rt-dev): $(head -n 1 "$T/probe.log")"

"$FUZZ/build.sh" "$T/build" >"$T/build.log" 2>&1 || fail "tests/fuzz/build.sh failed"
log "built fuzz_message and fuzz_recv; running each for $secs s"
FUZZ_BUILD="$T/build" TMPDIR="$T" "$FUZZ/run.sh" "$secs" >"$T/fuzz.log" 2>&1
status=$?
grep '^fuzz_' "$T/fuzz.log" | while IFS= read -r line; do log "$line"; done
[ "$status" = 0 ] || fail "a fuzz target crashed or leaked (run.sh exit $status)"
[ "$(grep -c '^fuzz_[a-z]*: [0-9]* executions in .*, no crash$' "$T/fuzz.log")" = 2 ] ||
    fail "run.sh did not report both targets"
pass
