#!/bin/sh
# Random sequences of upgrades, stops, kills, stalls and failed releases
# against real processes, with invariants checked after every step
# (tests/sequences.py says which). make check plays SEQUENCES (default 6)
# of STEPS (default 20); SEED=N replays, and a failure prints the command
# that does. The long run: SEQUENCES=1000 tests/integration/sequences.sh
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || skip "no $PY"
: "${SEQUENCES:=6}" "${STEPS:=20}"
export SEQUENCES STEPS
TMPDIR=$T "$PY" "$top_srcdir/tests/sequences.py" --build "$top_builddir"
rc=$?
[ "$rc" = 77 ] && skip "tests/sequences.py cannot run here"
[ "$rc" = 0 ] || fail "an invariant broke (the replay command is above)"
pass
