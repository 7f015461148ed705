#!/usr/bin/env bash
# Run a no-auth zaqar-server (from .zaqar-venv) on Redis, in the background.
# The one way the tests (tests/fixtures/servers.py) and the benchmarks
# (benchmarks/common.py) start one.
#
#   tools/zaqar-server.sh start|stop|status|flush [--port N] [--dbids M,N]
#       [--run-dir DIR] [--flush] [--websocket-port P [--notification-port Q]]
#       [--gunicorn N] [--no-pipeline] [--cpus LIST] [--pools A,B,...]
#       [--extra-config FILE]
#
# Env defaults: ZAQAR_PORT (8888), ZAQAR_DBIDS ("3,4": message store,
# management store), ZAQAR_RUN_DIR (.run/zaqar-<port>), ZAQAR_REDIS
# (127.0.0.1:6379), ZAQAR_VENV (.zaqar-venv).
# --flush (start only) empties its Redis databases first; the action
# flush (server stopped) empties them afterwards.
# --websocket-port P (start) also runs a websocket zaqar-server on P,
# sharing the Redis databases, with its notification (push) server on Q
# (default P+1); stop and status cover it whenever it runs.
# --gunicorn N (start): serve the wsgi app with N gunicorn sync workers
# (tools/zaqar_wsgi.py) instead of zaqar-server's single-threaded wsgiref;
# 0 (the default) is wsgiref.
# --no-pipeline (start): without the notification pipeline
# ([storage] message_pipeline = zaqar.notification.notifier), which
# subscriptions (webhooks, websocket push) need and which is on by default.
# --cpus LIST (start): run every zaqar-server process (wsgi, gunicorn
# workers, websocket) with taskset -c LIST, e.g. 1 or 0,1.
# --extra-config FILE (start): a zaqar config file read after the one
# written here, so its options win (e.g. auth_strategy = keystone and
# [keystone_authtoken]: tests/fixtures/keystone.py); with auth on, a 401
# from GET /v2/ counts as answering.
# --pools A,B (start, flush): pooling: each Redis database A, B, ... is a
# pool (pool-dbA, ...), registered through the /v2/pools API (admin_mode
# on) and all put in the flavor "pooled"; new queues are spread across
# the pools by weight. The pool catalogue (management store) is then
# SQLite, $run_dir/catalogue.sqlite: Zaqar 23's Redis management store
# cannot register a pool (redis PoolsController._create takes the flavor
# as a pool group, and the options as the flavor). M,N are not used then.
# Beware (Zaqar 23): a PUT /v2/queues/Q of an existing queue without
# {"_flavor": "pooled"} moves Q to a pool picked anew (its pool's flavor is
# not none), leaving its messages behind. The bridge never PUTs a queue (a
# post creates it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    sed -n '6,9p' "$0" | sed 's/^# *//' >&2
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
gunicorn=0
pipeline=true
cpus=
pools=
extra_config=
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=$2; shift 2 ;;
        --dbids) dbids=$2; shift 2 ;;
        --run-dir) run_dir=$2; shift 2 ;;
        --flush) flush=true; shift ;;
        --websocket-port) ws_port=$2; shift 2 ;;
        --notification-port) notif_port=$2; shift 2 ;;
        --gunicorn) gunicorn=$2; shift 2 ;;
        --no-pipeline) pipeline=false; shift ;;
        --cpus) cpus=$2; shift 2 ;;
        --pools) pools=$2; shift 2 ;;
        --extra-config) extra_config=$2; shift 2 ;;
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
pin=()
[ -z "$cpus" ] || pin=(taskset -c "$cpus")
flavor=pooled
files=()
catalogue=$run_dir/catalogue.sqlite

alive() {  # alive PID: a zaqar-server process (not a zombie, not reused)
    grep -qsE 'zaqar-server|zaqar_wsgi' "/proc/$1/cmdline"
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

# request METHOD PATH [JSON]: one no-auth request; prints the status.
request() {
    "$venv/bin/python" - "$url" "$@" <<'EOF'
import sys
import urllib.error
import urllib.request
url, method, path = sys.argv[1:4]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
# Without these headers even the home document answers 400. No auth: the
# roles come from X-Roles, and the pools and flavors API wants admin.
req = urllib.request.Request(url + path, data=data, method=method, headers={
    'Client-ID': '8d8a2c63-43c6-4d6e-a0b2-6c1dc7d1a0e5',
    'X-Project-ID': 'zaqar-server-sh', 'X-Roles': 'admin',
    'Content-Type': 'application/json'})
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        print(resp.status)
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode(errors='replace'))
except OSError as exc:
    print(0, exc)
EOF
}

answers() {  # 200, or 401 with auth on (--extra-config)
    case $(request GET /v2/ 2>/dev/null) in
        200|401*) return 0 ;;
        *) return 1 ;;
    esac
}

config_files() {  # config_files NAME: sets files, zaqar-server's args
    files=(--config-file "$run_dir/$1")
    [ -z "$extra_config" ] || files+=(--config-file "$extra_config")
}

write_conf() {  # write_conf FILE TRANSPORT_SECTIONS
    local pooling=false admin=false management=redis
    local mgmt_uri="redis://$redis?dbid=$mgmt_db"
    if [ -n "$pools" ]; then
        pooling=true admin=true management=sqlalchemy
        mgmt_uri=sqlite:///$catalogue
    fi
    cat > "$1" <<EOF
[DEFAULT]
# empty = no auth; the project comes from the X-Project-ID header
auth_strategy =
pooling = $pooling
# the /v2/pools and /v2/flavors API (with pooling)
admin_mode = $admin
unreliable = true

[drivers]
transport = $2
message_store = redis
management_store = $management
$3

# Zaqar reads the database only from ?dbid=N (a /N path means db 0).
[drivers:message_store:redis]
uri = redis://$redis?dbid=$msg_db

[drivers:management_store:$management]
uri = $mgmt_uri

[signed_url]
secret_key = amqp-zaqar-bridge-test-secret
EOF
    if $pipeline; then
        cat >> "$1" <<EOF

[storage]
# needed for subscriptions (webhooks, websocket push)
message_pipeline = zaqar.notification.notifier
EOF
    fi
}

all_dbs() {
    if [ -n "$pools" ]; then echo ${pools//,/ }; else echo "$msg_db" "$mgmt_db"; fi
}

flush_dbs() {
    # shellcheck disable=SC2046
    "$venv/bin/python" - "$redis" $(all_dbs) <<'EOF'
import sys
import redis
host, port = sys.argv[1].rsplit(':', 1)
for db in sys.argv[2:]:
    redis.Redis(host=host, port=int(port), db=int(db)).flushdb()
EOF
    rm -f "$catalogue"
    echo "zaqar-server: flushed redis dbs $(all_dbs | tr ' ' ,)"
}

make_catalogue() {  # the pool catalogue's tables (SQLite)
    # Not zaqar-sql-db-manage: its migrations are MySQL's (ALTER ... CHANGE).
    "$venv/bin/python" - "sqlite:///$catalogue" <<'EOF'
import sys
import sqlalchemy
from zaqar.storage.sqlalchemy import tables
tables.metadata.create_all(sqlalchemy.create_engine(sys.argv[1]))
EOF
}

register_pools() {  # each pool database as a pool, all in one flavor
    local db out names=()
    for db in ${pools//,/ }; do
        out=$(request PUT "/v2/pools/pool-db$db" \
            "{\"weight\": 100, \"uri\": \"redis://$redis?dbid=$db\"}")
        case $out in
            201*|204*|409*) ;;  # 409: registered before (not flushed)
            *) echo "zaqar-server: registering pool-db$db: $out" >&2
               return 1 ;;
        esac
        names+=("\"pool-db$db\"")
    done
    out=$(request PUT "/v2/flavors/$flavor" \
        "{\"pool_list\": [$(IFS=,; echo "${names[*]}")]}")
    case $out in
        201*|204*|409*) ;;
        *) echo "zaqar-server: creating flavor $flavor: $out" >&2
           return 1 ;;
    esac
    echo "zaqar-server: pools ${names[*]} in flavor $flavor"
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
    [ -z "$pools" ] || make_catalogue
    local what=wsgiref
    if [ "$gunicorn" -gt 0 ]; then
        what="gunicorn, $gunicorn sync worker(s)"
        ZAQAR_CONFIG_FILE=$run_dir/zaqar.conf${extra_config:+:$extra_config} \
            "${pin[@]}" \
            "$venv/bin/gunicorn" --workers "$gunicorn" \
            --worker-class sync --bind "127.0.0.1:$port" \
            --pythonpath "$root/tools" --timeout 120 \
            --graceful-timeout 5 --log-level warning \
            zaqar_wsgi:application >> "$log" 2>&1 < /dev/null &
    else
        config_files zaqar.conf
        "${pin[@]}" "$venv/bin/zaqar-server" "${files[@]}" \
            >> "$log" 2>&1 < /dev/null &
    fi
    echo $! > "$pidfile"
    local deadline=$((SECONDS + 60))
    until answers; do
        if ! running || [ $SECONDS -ge $deadline ]; then
            echo "zaqar-server: not answering at $url/v2/; log tail:" >&2
            tail -n 30 "$log" >&2
            stop > /dev/null
            exit 1
        fi
        sleep 0.2
    done
    if [ -n "$pools" ] && ! register_pools; then
        stop > /dev/null
        exit 1
    fi
    $pipeline || what="$what, no notification pipeline"
    [ -z "$cpus" ] || what="$what, cpus $cpus"
    [ -z "$pools" ] || what="$what, pooling ($catalogue)"
    echo "zaqar-server: running (pid $(cat "$pidfile")) at $url ($what," \
        "redis dbs $(all_dbs | tr ' ' ,), log $log)"
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
    config_files zaqar-ws.conf
    "${pin[@]}" "$venv/bin/zaqar-server" "${files[@]}" \
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

kill_pidfile() {  # kill_pidfile FILE: stop its process (and children)
    local pid i kids
    pid=$(cat "$1")
    kids=$(pgrep -P "$pid" || true)  # gunicorn's workers
    kill "$pid"
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then kill -9 "$pid"; fi
    for pid in $kids; do  # a worker may still be finishing: 5 s
        for ((i = 0; i < 50; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then kill -9 "$pid"; fi
    done
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

flush() {
    if running || ws_running; then
        echo "zaqar-server: running on port $port; stop it first" >&2
        exit 1
    fi
    flush_dbs
}

case $action in
    start|stop|status|flush) $action ;;
    *) usage ;;
esac
