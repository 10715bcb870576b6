#!/bin/sh
# wrk with 64 keep-alive connections while 10 successive upgrades happen
# (wrk runs until they are done, then is stopped): no socket error
# (connect, read, write, timeout), no non-2xx response.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../load.sh"

command -v wrk >/dev/null || skip "wrk is not installed"
load_with_upgrades 10
pass
