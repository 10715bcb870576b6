#!/bin/sh
# A peer running as another uid (nobody) that can reach the control socket
# gets error "forbidden" whatever it sends: a takeover hello, status, stop.
# The incumbent logs each refusal, keeps serving, and does not stop.
. "$(dirname "$0")/../lib.sh"

use_peer
[ "$(id -u)" = 0 ] || skip "needs root to run a peer as another uid (running as uid $(id -u))"
command -v setpriv >/dev/null || skip "needs setpriv (util-linux) to change uid"
uid=$(id -u nobody 2>/dev/null) || skip "no user nobody"
group=$(id -gn nobody)
as_nobody() { setpriv --reuid=nobody --regid="$group" --clear-groups "$@"; }
as_nobody test -r "$top_srcdir/tests/peer.py" || skip "nobody cannot read $top_srcdir/tests/peer.py"

port=$(free_port)
start_httpd v1 --listen "http=tcp://127.0.0.1:$port" --tag v1
v1=$LAST_PID
wait_for 30 is_serving "$v1" || fail "v1 (pid $v1) never served"
# The socket is 0700 in a 0700 directory: open the way, so that only the
# peer check stands between nobody and the server.
chmod 0755 "$T"
chmod 0777 "$CONTROL"
as_nobody test -w "$CONTROL" || fail "nobody still cannot reach $CONTROL"

as_nobody $PEER successor --control "$CONTROL" >"$T/nobody.out" 2>&1
rc=$?
[ "$rc" = 4 ] || fail "nobody's successor exit $rc, want 4 (error): $(tail -n 3 "$T/nobody.out")"
[ "$($PEER find "$T/nobody.out" --type error --field msg.code)" = forbidden ] ||
    fail "nobody did not get forbidden: $(tail -n 3 "$T/nobody.out")"
[ "$($PEER find "$T/nobody.out" --type error --field msg.message)" = \
    "uid not allowed on this control socket" ] || fail "wrong forbidden message"
! grep -q '"type":"offer"' "$T/nobody.out" || fail "nobody received an offer"

# The server answers the request it read, so handoffctl says why and
# exits 4 (refused), with no report.
as_nobody "$CTL" status --control "$CONTROL" >"$T/ctl.out" 2>&1
rc=$?
[ "$rc" = 4 ] || fail "handoffctl status as nobody: exit $rc, want 4: $(cat "$T/ctl.out")"
grep -q "refused status: forbidden: uid not allowed on this control socket" "$T/ctl.out" ||
    fail "handoffctl did not say forbidden: $(cat "$T/ctl.out")"
! grep -q generation "$T/ctl.out" || fail "nobody got a report: $(cat "$T/ctl.out")"

as_nobody $PEER raw --control "$CONTROL" --send '{"type":"stop","proto":1}' >"$T/stop.out" 2>&1
[ "$($PEER find "$T/stop.out" --type error --field msg.code)" = forbidden ] ||
    fail "stop from nobody not refused: $(tail -n 3 "$T/stop.out")"

[ "$(grep -c "control: pid [0-9]* uid $uid: forbidden: uid not allowed on this control socket" \
    "$T/v1.log")" = 3 ] || fail "v1 did not log 3 refusals of uid $uid"
! logged v1 "stop requested" || fail "v1 took a stop from nobody"
! logged v1 "offering" || fail "v1 offered to nobody"
is_serving "$v1" || fail "v1 not serving after the refusals"
body_has "http://127.0.0.1:$port/" "pid=$v1 tag=v1" || fail "v1 does not answer GET"
pass
