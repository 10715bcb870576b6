#!/bin/bash
# SIGHUP (issue 10, item 5): a server detached from its terminal must not
# die of a hang-up. handoff-httpd logs it and ignores it, serving or
# draining: v1 drains a request the test holds after v2 took over; both
# get SIGHUP; both live on, v2 serves, and v1 answers the held request
# and exits 0 once the test lets go. handoff-exec passes it on to the
# child that serves, and with none (after a release, in its rollback
# window) logs it and ignores it.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

port=$(free_port)
url="http://127.0.0.1:$port"
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1 --drain-timeout 60
v1=$LAST_PID
hold req
wait_for 10 has_connections 1 || fail "the held request never reached v1"
serve v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
wait_for 10 logged v1 "released to pid $v2" || fail "v1 never released v2"

kill -HUP "$v1" "$v2"
wait_for 10 logged v1 "SIGHUP ignored" ||
    fail "v1 did not log the SIGHUP$(dead "$v1" && echo ': it died of it')"
wait_for 10 logged v2 "SIGHUP ignored" ||
    fail "v2 did not log the SIGHUP$(dead "$v2" && echo ': it died of it')"
alive "$v1" || fail "v1 died of SIGHUP while draining"
alive "$v2" || fail "v2 died of SIGHUP while serving"
only_newest "$v2"
release "$req" "$v1"
reap_ok 15 "$v1" v1

# handoff-exec: after a release, in its rollback window, with no child.
CONTROL="$T/exec.sock"
eport=$(free_port)
exec_sleeper e1 "$eport" 60
e1=$LAST_PID
wait_for 15 is_serving "$e1" || fail "e1 (pid $e1) never served"
exec_sleeper e2 "$eport" 60
e2=$LAST_PID
wait_for 15 logged e1 "staying up to 60000 ms" || fail "e1 never began its rollback window"
wait_for 15 logged e1 "child pid [0-9]* was killed by signal 15" ||
    fail "e1's child did not stop"
kill -HUP "$e1"
wait_for 10 logged e1 "signal 1 (Hangup): no child serves now; ignored" ||
    fail "e1 did not log the SIGHUP"
alive "$e1" || fail "e1 died of SIGHUP in its rollback window"
kill -TERM "$e1"
reap_ok 15 "$e1" e1
is_serving "$e2" || fail "e2 does not serve"
pass
