#!/bin/bash
# A graceful stop (SIGTERM) of an incumbent that drains after released
# ends any rollback: when its successor then dies, it does not serve
# again; it answers the request it held and exits 0, and a second SIGTERM
# is not needed (nor taken for "again").
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"
# Held requests keep older generations draining here: no migration.
no_migrate

port=$(free_port)
url="http://127.0.0.1:$port"
serve v1 --listen "http=tcp://127.0.0.1:$port" --tag v1 --drain-timeout 60
v1=$LAST_PID
hold held1
wait_for 30 has_connections 1 || fail "the held request never reached v1"
serve v2 --listen "http=tcp://127.0.0.1:$port" --tag v2
v2=$LAST_PID
wait_for 30 logged v1 "released to pid $v2" || fail "v1 never released v2"

kill -TERM "$v1"
wait_for 30 logged v1 "stop requested while draining: no rollback from now on" ||
    fail "v1 did not log the stop while draining: $(tail -n 3 "$T/v1.log")"
kill -KILL "$v2"
wait_exit "$v2"
wait_for 30 logged v1 "successor pid $v2 has exited, after it handed over or stopped: draining on" ||
    fail "v1 did not log its successor's exit as no rollback: $(tail -n 3 "$T/v1.log")"
logged v1 "rolled back" && fail "v1 rolled back after it was told to stop"
logged v1 "signal 15 again" && fail "v1 took its one SIGTERM for a second"
curl -s --max-time 5 "$url/" >/dev/null &&
    fail "someone answers on the port after v1 was stopped and v2 killed"
release "$held1" "$v1"
reap_ok 60 "$v1" "v1"
pass
