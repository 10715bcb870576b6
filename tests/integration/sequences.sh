#!/bin/sh
# Random sequences of upgrades, stops, kills, stalls and failed releases
# against real processes, with invariants checked after every step
# (tests/sequences.py says which). make check plays SEQUENCES (default 6)
# of STEPS (default 20) from a new seed each run; SEED=N replays, and a
# failure prints the command that does. top_builddir=DIR runs the driver
# beside this script against the programs built in DIR. The long run:
# SEQUENCES=1000 tests/integration/sequences.sh
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || skip "no $PY"
: "${SEQUENCES:=6}" "${STEPS:=20}"
export SEQUENCES STEPS
TMPDIR=$T "$PY" "$(dirname "$0")/../sequences.py" --build "$top_builddir"
rc=$?
[ "$rc" = 77 ] && skip "tests/sequences.py cannot run here"
[ "$rc" = 0 ] || fail "an invariant broke (the replay command is above)"
pass
