#!/bin/sh
# wrk with a new connection per request ("Connection: close") while 10
# successive upgrades happen (wrk runs until they are done, then is
# stopped): no socket error, no non-2xx response.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

command -v wrk >/dev/null || skip "wrk is not installed"
load_with_upgrades 10 -H "Connection: close"
pass
