#!/bin/sh
# handoffctl upgrade decides by the control socket (issue 10, item 3;
# DESIGN.md 6): success when a newer generation than the one serving at
# the start answers status within --timeout, whatever became of COMMAND's
# own process.
# 1. COMMAND daemonises (sh -c 'handoff-httpd ... & exit 0'): it exits 0
#    at once and its child takes over: exit 0, "upgraded: pid v1 -> pid
#    v2", v2 serves, v1 exits 0.
# 2. COMMAND stays in the foreground as the server's parent (sh -c
#    'handoff-httpd ...; exit 0'): exit 0 as soon as v3 serves, and sh is
#    left running.
# 3. COMMAND exits 0 and starts nothing: exit 6 at the timeout, saying
#    so; v3 serves on.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

port=$(free_port)
url="http://127.0.0.1:$port"
args="--control $CONTROL --listen http=tcp://127.0.0.1:$port"
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1
v1=$LAST_PID

# shellcheck disable=SC2016,SC2086
"$CTL" upgrade --control "$CONTROL" --timeout 30 --log "$T/up2.log" -- \
    sh -c 'echo "sh $$"; "$@" & echo "child $!"; exit 0' sh \
    "$HTTPD" $args --tag v2 >"$T/up2.out" 2>&1
rc=$?
v2=$(sed -n 's/^child \([0-9]*\)$/\1/p' "$T/up2.log")
[ -n "$v2" ] && PIDS="$PIDS $v2"	# not our child: killed at cleanup
[ "$rc" = 0 ] || fail "daemonising COMMAND: exit $rc, want 0: $(cat "$T/up2.out")"
grep -qx "upgraded: pid $v1 -> pid $v2 (generation 2)" "$T/up2.out" ||
    fail "upgrade printed: $(cat "$T/up2.out")"
is_serving "$v2" || fail "v2 (pid $v2) does not serve"
body_has "$url/" "pid=$v2 tag=v2 gen=2" || fail "v2 does not answer"
reap_ok 15 "$v1" "v1, after the daemonised v2 took over"

# shellcheck disable=SC2016,SC2086
"$CTL" upgrade --control "$CONTROL" --timeout 30 --log "$T/up3.log" -- \
    sh -c 'echo "sh $$"; "$@"; exit 0' sh "$HTTPD" $args --tag v3 \
    >"$T/up3.out" 2>&1
rc=$?
wrapper=$(sed -n 's/^sh \([0-9]*\)$/\1/p' "$T/up3.log")
[ -n "$wrapper" ] && PIDS="$PIDS $wrapper"
v3=$(serving_pid)
[ -n "$v3" ] && PIDS="$PIDS $v3"
[ "$rc" = 0 ] || fail "foreground wrapper: exit $rc, want 0: $(cat "$T/up3.out")"
grep -qx "upgraded: pid $v2 -> pid $v3 (generation 3)" "$T/up3.out" ||
    fail "upgrade printed: $(cat "$T/up3.out")"
[ "$v3" != "$wrapper" ] || fail "the wrapper itself serves?"
alive "$wrapper" || fail "the foreground wrapper (pid $wrapper) was stopped"
body_has "$url/" "pid=$v3 tag=v3 gen=3" || fail "v3 does not answer"
wait_for 15 gone "$v2" || fail "v2 did not exit after v3 took over"

"$CTL" upgrade --control "$CONTROL" --timeout 1 -- sh -c 'exit 0' \
    >"$T/up4.out" 2>&1
rc=$?
[ "$rc" = 6 ] || fail "COMMAND that starts nothing: exit $rc, want 6: $(cat "$T/up4.out")"
grep -q "exited with status 0, and no newer generation served on $CONTROL within 1000 ms" \
    "$T/up4.out" || fail "timeout message: $(cat "$T/up4.out")"
is_serving "$v3" || fail "v3 no longer serves"
pass
