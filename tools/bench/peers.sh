# nginx and HAProxy as the benchmark scripts run them: one serving
# process each, configuration, pid file and logs in $R, answering a fixed
# 200 of about the length of handoff-httpd's body. Source it after lib.sh;
# set R and PORT before each start, and NGINX, HAPROXY to the programs.
# Limits for the load at hand (defaults fit wrk's 64 connections):
#   PEER_CONNS      nginx worker_connections, HAProxy maxconn (4096)
#   PEER_IDLE       how long an idle keep-alive connection is kept (65s)
#   PEER_HARD_STOP  HAProxy hard-stop-after, if set
#   PEER_FD_LIMIT   if set, HAProxy starts with "no strict-limits": it
#                   counts two fds a connection (a backend's too) and
#                   refuses to start when the hard limit is below that

: "${PEER_CONNS:=4096}" "${PEER_IDLE:=65s}" "${PEER_HARD_STOP:=}" "${PEER_FD_LIMIT:=}"
BODY="pid=0 tag=peer gen=1"	# about the length of handoff-httpd's body

# ---- nginx ----

nginx_conf() {
	mkdir -p "$R/nginx-tmp"
	cat >"$R/nginx.conf" <<EOC
worker_processes 1;
worker_rlimit_nofile $((PEER_CONNS + 100));
pid $R/nginx.pid;
error_log $R/nginx-error.log notice;
events { worker_connections $PEER_CONNS; }
http {
	access_log off;
	client_body_temp_path $R/nginx-tmp/body;
	proxy_temp_path $R/nginx-tmp/proxy;
	fastcgi_temp_path $R/nginx-tmp/fastcgi;
	uwsgi_temp_path $R/nginx-tmp/uwsgi;
	scgi_temp_path $R/nginx-tmp/scgi;
	keepalive_requests 10000000;
	keepalive_timeout $PEER_IDLE;
	server {
		listen 127.0.0.1:$PORT;
		default_type text/plain;
		location / { return 200 "$BODY\n"; }
	}
}
EOC
}

nginx_cmd() { "$NGINX" -p "$R/" -c "$R/nginx.conf" -e "$R/nginx-error.log" "$@"; }
nginx_master() { cat "$R/nginx.pid" 2>/dev/null; }
workers_of() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d' | sort; }
has_workers() { [ -n "$(workers_of "$1")" ]; }

nginx_start() {
	nginx_conf
	nginx_cmd || return 1
	wait_for 5 test -s "$R/nginx.pid"
}

new_master() { [ -s "$R/nginx.pid" ] && [ "$(nginx_master)" != "$_old" ]; }

# The first half of nginx's binary upgrade: USR2 to the master (started
# by full path), which execs the binary as a new master with the
# listeners; done once that master has its worker. The old master's
# pid in NGINX_OLD.
nginx_new_binary() {
	_old=$(nginx_master)
	NGINX_OLD=$_old
	wait_for 10 test ! -e "$R/nginx.pid.oldbin" || return 1
	kill -USR2 "$_old" || return 1
	wait_for 10 test -s "$R/nginx.pid.oldbin" || return 1
	wait_for 10 new_master || return 1
	wait_for 10 has_workers "$(nginx_master)"
}

# The second half: WINCH (the old workers stop accepting and finish)
# and QUIT (the old master exits once they have).
nginx_stop_old() { kill -WINCH "$NGINX_OLD" && kill -QUIT "$NGINX_OLD"; }

# Binary upgrade, as the nginx documentation gives it.
nginx_binary_upgrade() { nginx_new_binary && nginx_stop_old; }

# ---- HAProxy ----

haproxy_conf() {
	cat >"$R/haproxy.cfg" <<EOC
global
	nbthread 1
	maxconn $PEER_CONNS
	stats socket $R/stats.sock mode 600 level admin expose-fd listeners
	log stderr format raw local0 err
${PEER_HARD_STOP:+	hard-stop-after $PEER_HARD_STOP}
${PEER_FD_LIMIT:+	no strict-limits}
defaults
	mode http
	timeout connect 5s
	timeout client $PEER_IDLE
	timeout server 30s
	timeout http-keep-alive $PEER_IDLE
frontend fe
	bind 127.0.0.1:$PORT
	http-request return status 200 content-type text/plain string "$BODY\n"
EOC
}

haproxy_pid() { cat "$R/haproxy.pid" 2>/dev/null; }

haproxy_start() {
	haproxy_conf
	"$HAPROXY" -D -f "$R/haproxy.cfg" -p "$R/haproxy.pid" 2>>"$R/haproxy.log"
}

# -D returns once the new process has bound (or received) its listeners
# and forked; it has signalled the old one (pid in HAPROXY_OLD) to finish
# and exit before that.
haproxy_reload() {
	_old=$(haproxy_pid)
	HAPROXY_OLD=$_old
	"$HAPROXY" -D -f "$R/haproxy.cfg" -p "$R/haproxy.pid" "$@" \
	    -sf "$_old" 2>>"$R/haproxy.log" || return 1
	[ "$(haproxy_pid)" != "$_old" ]
}
haproxy_seamless() { haproxy_reload -x "$R/stats.sock"; }
haproxy_plain() { haproxy_reload; }
