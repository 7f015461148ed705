#!/usr/bin/env bash
# Run a no-auth zaqar-server (from .zaqar-venv) on Redis, in the background.
#
#   tools/zaqar-server.sh start|stop|status [--port N] [--dbids M,N]
#                         [--run-dir DIR] [--flush] [--websocket-port P
#                         [--notification-port Q]]
#
# Env defaults: ZAQAR_PORT (8888), ZAQAR_DBIDS ("3,4": message store,
# management store), ZAQAR_RUN_DIR (.run/zaqar-<port>), ZAQAR_REDIS
# (127.0.0.1:6379), ZAQAR_VENV (.zaqar-venv).
# --flush (start only) empties both Redis databases first.
# --websocket-port P (start) also runs a websocket zaqar-server on P,
# sharing the Redis databases, with its notification (push) server on Q
# (default P+1); stop and status cover it whenever it runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    sed -n '4,6p' "$0" | sed 's/^# *//' >&2
    exit 2
}

[ $# -ge 1 ] || usage
action=$1
shift
port=${ZAQAR_PORT:-8888}
dbids=${ZAQAR_DBIDS:-3,4}
run_dir=${ZAQAR_RUN_DIR:-}
redis=${ZAQAR_REDIS:-127.0.0.1:6379}
venv=${ZAQAR_VENV:-$root/.zaqar-venv}
flush=false
ws_port=
notif_port=
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=$2; shift 2 ;;
        --dbids) dbids=$2; shift 2 ;;
        --run-dir) run_dir=$2; shift 2 ;;
        --flush) flush=true; shift ;;
        --websocket-port) ws_port=$2; shift 2 ;;
        --notification-port) notif_port=$2; shift 2 ;;
        *) usage ;;
    esac
done
run_dir=${run_dir:-$root/.run/zaqar-$port}
msg_db=${dbids%,*}
mgmt_db=${dbids#*,}
pidfile=$run_dir/zaqar.pid
log=$run_dir/zaqar.log
url=http://127.0.0.1:$port
ws_pidfile=$run_dir/zaqar-ws.pid
ws_log=$run_dir/zaqar-ws.log
if [ -n "$ws_port" ] && [ -z "$notif_port" ]; then
    notif_port=$((ws_port + 1))
fi

alive() {  # alive PID: a zaqar-server process (not a zombie, not reused)
    grep -qs zaqar-server "/proc/$1/cmdline"
}

running() {
    [ -f "$pidfile" ] && alive "$(cat "$pidfile")"
}

ws_running() {
    [ -f "$ws_pidfile" ] && alive "$(cat "$ws_pidfile")"
}

listening() {  # listening PORT...: each accepts TCP connections
    "$venv/bin/python" - "$@" <<'EOF' 2>/dev/null
import socket
import sys
for port in sys.argv[1:]:
    socket.create_connection(('127.0.0.1', int(port)), timeout=1).close()
EOF
}

answers_200() {
    "$venv/bin/python" - "$url/v2/" <<'EOF' 2>/dev/null
import sys
import urllib.request
# Without these headers even the home document answers 400.
req = urllib.request.Request(sys.argv[1], headers={
    'Client-ID': '8d8a2c63-43c6-4d6e-a0b2-6c1dc7d1a0e5',
    'X-Project-ID': 'zaqar-server-sh'})
sys.exit(urllib.request.urlopen(req, timeout=2).status != 200)
EOF
}

write_conf() {  # write_conf FILE TRANSPORT_SECTIONS
    cat > "$1" <<EOF
[DEFAULT]
# empty = no auth; the project comes from the X-Project-ID header
auth_strategy =
pooling = false
unreliable = true

[drivers]
transport = $2
message_store = redis
management_store = redis
$3

# Zaqar reads the database only from ?dbid=N (a /N path means db 0).
[drivers:message_store:redis]
uri = redis://$redis?dbid=$msg_db

[drivers:management_store:redis]
uri = redis://$redis?dbid=$mgmt_db

[signed_url]
secret_key = amqp-zaqar-bridge-test-secret

[storage]
# needed for subscriptions (webhooks, websocket push)
message_pipeline = zaqar.notification.notifier
EOF
}

flush_dbs() {
    "$venv/bin/python" - "$redis" "$msg_db" "$mgmt_db" <<'EOF'
import sys
import redis
host, port = sys.argv[1].rsplit(':', 1)
for db in sys.argv[2:]:
    redis.Redis(host=host, port=int(port), db=int(db)).flushdb()
EOF
    echo "zaqar-server: flushed redis dbs $msg_db,$mgmt_db"
}

start() {
    if running; then
        echo "zaqar-server: already running (pid $(cat "$pidfile")) at $url"
        [ -z "$ws_port" ] || start_ws
        return
    fi
    if [ ! -x "$venv/bin/zaqar-server" ]; then
        echo "zaqar-server: $venv/bin/zaqar-server missing;" \
            "run tools/setup-env.sh" >&2
        exit 1
    fi
    mkdir -p "$run_dir"
    write_conf "$run_dir/zaqar.conf" wsgi "
[drivers:transport:wsgi]
bind = 127.0.0.1
port = $port"
    $flush && flush_dbs
    echo "--- start $(date -Is)" >> "$log"
    "$venv/bin/zaqar-server" --config-file "$run_dir/zaqar.conf" \
        >> "$log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    local deadline=$((SECONDS + 60))
    until answers_200; do
        if ! running || [ $SECONDS -ge $deadline ]; then
            echo "zaqar-server: not answering at $url/v2/; log tail:" >&2
            tail -n 30 "$log" >&2
            stop > /dev/null
            exit 1
        fi
        sleep 0.2
    done
    echo "zaqar-server: running (pid $(cat "$pidfile")) at $url" \
        "(redis dbs $msg_db,$mgmt_db, log $log)"
    [ -z "$ws_port" ] || start_ws
}

start_ws() {
    if ws_running; then
        echo "zaqar-server: websocket already running" \
            "(pid $(cat "$ws_pidfile"))"
        return
    fi
    # Underscores: zaqar ignores notification-port and the like.
    write_conf "$run_dir/zaqar-ws.conf" websocket "
[drivers:transport:websocket]
bind = 127.0.0.1
port = $ws_port
notification_bind = 127.0.0.1
notification_port = $notif_port"
    echo "--- start $(date -Is)" >> "$ws_log"
    "$venv/bin/zaqar-server" --config-file "$run_dir/zaqar-ws.conf" \
        >> "$ws_log" 2>&1 < /dev/null &
    echo $! > "$ws_pidfile"
    local deadline=$((SECONDS + 60))
    until listening "$ws_port" "$notif_port"; do
        if ! ws_running || [ $SECONDS -ge $deadline ]; then
            echo "zaqar-server: websocket not listening on" \
                "$ws_port/$notif_port; log tail:" >&2
            tail -n 30 "$ws_log" >&2
            stop > /dev/null
            exit 1
        fi
        sleep 0.2
    done
    echo "zaqar-server: websocket running (pid $(cat "$ws_pidfile")) at" \
        "ws://127.0.0.1:$ws_port (notifications on $notif_port, log $ws_log)"
}

kill_pidfile() {  # kill_pidfile FILE: stop its process, if alive
    local pid i
    pid=$(cat "$1")
    kill "$pid"
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then kill -9 "$pid"; fi
    rm -f "$1"
}

stop() {
    if ws_running; then
        kill_pidfile "$ws_pidfile"
        echo "zaqar-server: websocket stopped"
    fi
    rm -f "$ws_pidfile"
    if ! running; then
        rm -f "$pidfile"
        echo "zaqar-server: not running on port $port"
        return
    fi
    local pid
    pid=$(cat "$pidfile")
    kill_pidfile "$pidfile"
    echo "zaqar-server: stopped (pid $pid)"
}

status() {
    if ws_running; then
        echo "zaqar-server: websocket running (pid $(cat "$ws_pidfile"))"
    fi
    if running; then
        echo "zaqar-server: running (pid $(cat "$pidfile")) at $url"
    else
        echo "zaqar-server: not running on port $port"
        return 3
    fi
}

case $action in
    start|stop|status) $action ;;
    *) usage ;;
esac
