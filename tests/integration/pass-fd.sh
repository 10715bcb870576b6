#!/bin/sh
# Fds of any kind go across takeovers by name (handoff_pass_fd, "fd:"):
# tests/progs/fdkeeper keeps a counter in a memfd, a line in a pipe and a
# count in an eventfd; three generations each find what the one before
# left, the same objects (their /proc links match), and status lists
# them as kind fd.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

KEEPER="$top_builddir/tests/progs/fdkeeper"
[ -x "$KEEPER" ] || fail "$KEEPER is not built (make check builds it)"

keeper() {
	"$KEEPER" "$CONTROL" "$1" >"$T/$1.out" 2>"$T/$1.log" &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
	wait_for 60 grep -q "^$1 gen" "$T/$1.out" ||
	    fail "$1 never served: $(cat "$T/$1.log")"
}

keeper v1
v1=$LAST_PID
grep -qx "v1 gen 1: counter=1 pipe=- eventfd=0" "$T/v1.out" ||
    fail "v1: $(cat "$T/v1.out")"
link_v1=$(readlink "/proc/$v1/fd/$(ls -l "/proc/$v1/fd" |
    sed -n 's/.* \([0-9]*\) -> \/memfd:counter.*/\1/p' | head -n 1)")
[ -n "$link_v1" ] || fail "v1 holds no memfd"

keeper v2
v2=$LAST_PID
reap_ok 60 "$v1" v1
grep -qx "v2 gen 2: counter=2 pipe=v1 eventfd=1" "$T/v2.out" ||
    fail "v2 did not find v1's state: $(cat "$T/v2.out")"
keeper v3
v3=$LAST_PID
reap_ok 60 "$v2" v2
grep -qx "v3 gen 3: counter=3 pipe=v2 eventfd=1" "$T/v3.out" ||
    fail "v3 did not find v2's state: $(cat "$T/v3.out")"
ls -l "/proc/$v3/fd" | grep -q -- "-> $link_v1" ||
    fail "v3 does not hold v1's memfd ($link_v1)"
logged v3 "took over from pid $v2: adopted 4 (" ||
    fail "v3 did not adopt the 4 fds: $(grep 'took over' "$T/v3.log")"

"$CTL" status --control "$CONTROL" --json >"$T/status.json" ||
    fail "handoffctl status failed"
python3 - "$T/status.json" <<'PY' || fail "status: $(cat "$T/status.json")"
import json, sys
r = json.load(open(sys.argv[1]))
kinds = {l["name"]: (l["kind"], l["family"], l["socktype"], l["address"])
         for l in r["listeners"]}
assert kinds["counter"][:3] == ("fd", "other", "other"), kinds
assert kinds["counter"][3].startswith("/memfd:counter"), kinds
assert kinds["pipe-r"][3].startswith("pipe:["), kinds
assert kinds["events"][3] == "anon_inode:[eventfd]", kinds
assert r["count"] == 5, r["count"]
PY
"$CTL" stop --control "$CONTROL" >/dev/null || fail "handoffctl stop failed"
reap_ok 60 "$v3" v3
pass
