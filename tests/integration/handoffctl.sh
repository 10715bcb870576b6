#!/bin/sh
# handoffctl's contracts (DESIGN.md section 6) and exit codes:
# upgrade starts COMMAND in its own session, waits until it serves, prints
# old and new pid, exit 0; COMMAND that exits first: 5, with its status and
# its last lines; COMMAND that never serves: 6, and it is stopped; no
# server: 3; usage: 2; stop waits for the exit.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

port=$(free_port)
url="http://127.0.0.1:$port/"
args="--control $CONTROL --listen http=tcp://127.0.0.1:$port"

# No server yet: status and stop say so, exit 3.
"$CTL" status --control "$CONTROL" >"$T/none.out" 2>&1
[ $? = 3 ] || fail "status with no server: want exit 3: $(cat "$T/none.out")"
grep -q "no server at $CONTROL" "$T/none.out" || fail "status: $(cat "$T/none.out")"
"$CTL" stop --control "$CONTROL" >/dev/null 2>&1
[ $? = 3 ] || fail "stop with no server: want exit 3"
"$CTL" frobnicate --control "$CONTROL" >/dev/null 2>&1
[ $? = 2 ] || fail "unknown command: want exit 2"
"$CTL" upgrade --control "$CONTROL" >/dev/null 2>&1
[ $? = 2 ] || fail "upgrade without COMMAND: want exit 2"

# upgrade on an empty path starts the first one.
# shellcheck disable=SC2086
"$CTL" upgrade --control "$CONTROL" --log "$T/v1.log" -- "$HTTPD" $args \
    --tag v1 >"$T/up1.out" 2>&1 || fail "first upgrade: exit $?: $(cat "$T/up1.out")"
v1=$(sed -n 's/^started: pid \([0-9]*\) (generation 1)$/\1/p' "$T/up1.out")
[ -n "$v1" ] || fail "first upgrade printed: $(cat "$T/up1.out")"
PIDS="$PIDS $v1"
body_has "$url" "pid=$v1 tag=v1" || fail "v1 does not serve"

# A real upgrade: old and new pid, its own session, not our child.
# shellcheck disable=SC2086
"$CTL" upgrade --control "$CONTROL" --log "$T/v2.log" -- "$HTTPD" $args \
    --tag v2 >"$T/up2.out" 2>&1 || fail "upgrade: exit $?: $(cat "$T/up2.out")"
v2=$(sed -n "s/^upgraded: pid $v1 -> pid \\([0-9]*\\) (generation 2)\$/\\1/p" "$T/up2.out")
[ -n "$v2" ] || fail "upgrade printed: $(cat "$T/up2.out")"
PIDS="$PIDS $v2"
body_has "$url" "pid=$v2 tag=v2" || fail "v2 does not serve"
# Field 6 of /proc/PID/stat is the session; field 4 the parent.
stat_field() { sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f"$(($2 - 2))"; }
[ "$(stat_field "$v2" 6)" = "$v2" ] || fail "v2 is not in a session of its own"
[ "$(stat_field "$v2" 4)" != "$$" ] || fail "v2 is the test shell's child"
wait_for 30 gone "$v1" || fail "v1 did not exit after the upgrade"

# COMMAND that exits first: exit 5, its status, its last lines.
# shellcheck disable=SC2086
"$CTL" upgrade --control "$CONTROL" --log "$T/bad.log" -- "$HTTPD" $args \
    --listen "extra=tcp://203.0.113.1:80" --tag bad >"$T/bad.out" 2>&1
rc=$?
[ "$rc" = 5 ] || fail "failing COMMAND: exit $rc, want 5: $(cat "$T/bad.out")"
grep -q "exited with status 1 before serving on $CONTROL" "$T/bad.out" ||
    fail "no exit status: $(cat "$T/bad.out")"
grep -q "last lines of $T/bad.log" "$T/bad.out" &&
    grep -q "cannot bind tcp://203.0.113.1:80" "$T/bad.out" ||
    fail "COMMAND's last lines not shown: $(cat "$T/bad.out")"
grep -q "pid $v2 still serves" "$T/bad.out" || fail "does not say v2 serves on"
is_serving "$v2" || fail "v2 no longer serves after a failed upgrade"

# COMMAND that never serves (it runs until killed): exit 6 at the
# timeout, and it is stopped.
"$CTL" upgrade --control "$CONTROL" --timeout 1 -- tail -f /dev/null >"$T/slow.out" 2>&1
rc=$?
[ "$rc" = 6 ] || fail "COMMAND that never serves: exit $rc, want 6"
grep -q "did not serve on $CONTROL within 1000 ms; stopping it" "$T/slow.out" ||
    fail "timeout message: $(cat "$T/slow.out")"
idle=$(sed -n 's/.*tail (pid \([0-9]*\)).*/\1/p' "$T/slow.out")
[ -n "$idle" ] && wait_for 30 gone "$idle" || fail "the idle COMMAND was not stopped"
"$CTL" upgrade --control "$CONTROL" -- /nonexistent/cmd >"$T/noexec.out" 2>&1
[ $? = 5 ] || fail "COMMAND that cannot run: want exit 5"
grep -q "cannot run /nonexistent/cmd: No such file or directory" "$T/noexec.out" ||
    fail "exec failure: $(cat "$T/noexec.out")"

# status: exit 0; stop: waits for the exit, exit 0.
"$CTL" status --control "$CONTROL" | grep -q "^pid $v2  generation 2  tag v2  state serving" ||
    fail "status: $("$CTL" status --control "$CONTROL")"
"$CTL" stop --control "$CONTROL" --timeout 10 >"$T/stop.out" 2>&1 ||
    fail "stop: exit $?: $(cat "$T/stop.out")"
grep -q "^pid $v2 exited\$" "$T/stop.out" || fail "stop printed: $(cat "$T/stop.out")"
gone "$v2" || fail "v2 still running after stop returned"
pass
