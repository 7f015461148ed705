#!/usr/bin/env bash
# Run a real Keystone (sqlite, fernet tokens, gunicorn) in the background.
#
#   tools/keystone-server.sh start|stop|status [--port N] [--run-dir DIR]
#
# Env defaults: KEYSTONE_PORT (5000), KEYSTONE_RUN_DIR (.run/keystone-<port>),
# KEYSTONE_VENV (.keystone-venv, created with "pip install keystone gunicorn"
# when missing), KEYSTONE_ADMIN_PASSWORD (adminpw), PYTHON (python3).
# The first start in a run directory bootstraps it (db_sync, fernet keys,
# user admin in project admin, roles admin/manager/member/reader/service,
# identity endpoints); later starts reuse its database. start returns once
# GET /v3 answers 200. See /work/shared/keystone-local.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    sed -n '4,4p' "$0" | sed 's/^# *//' >&2
    exit 2
}

[ $# -ge 1 ] || usage
action=$1
shift
port=${KEYSTONE_PORT:-5000}
run_dir=${KEYSTONE_RUN_DIR:-}
venv=${KEYSTONE_VENV:-$root/.keystone-venv}
admin_password=${KEYSTONE_ADMIN_PASSWORD:-adminpw}
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=$2; shift 2 ;;
        --run-dir) run_dir=$2; shift 2 ;;
        *) usage ;;
    esac
done
run_dir=${run_dir:-$root/.run/keystone-$port}
pidfile=$run_dir/gunicorn.pid
log=$run_dir/keystone.log
url=http://127.0.0.1:$port/v3

alive() {  # alive PID: a gunicorn master (not a zombie, not a reused pid)
    grep -qs gunicorn "/proc/$1/cmdline"
}

running() {
    [ -f "$pidfile" ] && alive "$(cat "$pidfile")"
}

answers_200() {
    "$venv/bin/python" - "$url" <<'EOF' 2>/dev/null
import sys
import urllib.request
sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).status != 200)
EOF
}

ensure_venv() {
    # Several test runs may start at once: one builds, the others wait.
    mkdir -p "$root/.run"
    exec 9> "$root/.run/keystone-venv.lock"
    flock 9
    if [ ! -x "$venv/bin/keystone-manage" ] || [ ! -x "$venv/bin/gunicorn" ]
    then
        echo "keystone-server: creating $venv (pip install keystone gunicorn)"
        rm -rf "$venv"
        "${PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/pip" install -q keystone gunicorn > "$root/.run/keystone-venv.log" 2>&1 || {
            tail -n 40 "$root/.run/keystone-venv.log" >&2
            rm -rf "$venv"
            exit 1
        }
    fi
    flock -u 9
}

write_files() {
    cat > "$run_dir/keystone.conf" <<EOF
[DEFAULT]
log_file = $run_dir/keystone.log

[database]
connection = sqlite:///$run_dir/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = $run_dir/fernet-keys

[credential]
key_repository = $run_dir/credential-keys

[identity]
# tests only: ~60 ms per token instead of ~300 ms
password_hash_rounds = 4
EOF
    # oslo.config would parse gunicorn's argv and every worker would die
    # ("unrecognized arguments"): hand keystone an empty command line.
    cat > "$run_dir/ks_wsgi.py" <<'EOF'
import os
import sys

sys.argv = sys.argv[:1]
from keystone.server.flask import core  # noqa: E402

application = core.initialize_application(
    name='public', config_files=[os.environ['KEYSTONE_CONF']])
EOF
}

bootstrap() {
    [ -f "$run_dir/bootstrapped" ] && return
    local km=("$venv/bin/keystone-manage" --config-file "$run_dir/keystone.conf")
    local user group
    user=$(id -un)
    group=$(id -gn)
    mkdir -p "$run_dir/fernet-keys" "$run_dir/credential-keys"
    {
        "${km[@]}" fernet_setup --keystone-user "$user" --keystone-group "$group"
        "${km[@]}" credential_setup --keystone-user "$user" \
            --keystone-group "$group"
        "${km[@]}" db_sync
        "${km[@]}" bootstrap --bootstrap-password "$admin_password" \
            --bootstrap-region-id RegionOne --bootstrap-admin-url "$url/" \
            --bootstrap-internal-url "$url/" --bootstrap-public-url "$url/"
    } >> "$run_dir/bootstrap.log" 2>&1 || {
        echo "keystone-server: bootstrap failed; log tail:" >&2
        tail -n 30 "$run_dir/bootstrap.log" >&2
        exit 1
    }
    touch "$run_dir/bootstrapped"
}

start() {
    if running; then
        echo "keystone-server: already running (pid $(cat "$pidfile")) at $url"
        return
    fi
    ensure_venv
    mkdir -p "$run_dir"
    write_files
    bootstrap
    echo "--- start $(date -Is)" >> "$run_dir/gunicorn.log"
    # One control socket path per user would be shared by every gunicorn
    # master (and deleted by the first to exit): none.
    (cd "$run_dir" && KEYSTONE_CONF=$run_dir/keystone.conf \
        exec "$venv/bin/gunicorn" -b "127.0.0.1:$port" -w 2 --timeout 120 \
        --preload --no-control-socket --pid "$pidfile" ks_wsgi:application \
        >> "$run_dir/gunicorn.log" 2>&1 < /dev/null) &
    # A loaded machine takes its time to import keystone.
    local pid=$! deadline=$((SECONDS + 300))
    until answers_200; do
        if ! alive "$pid" || [ $SECONDS -ge $deadline ]; then
            echo "keystone-server: not answering at $url; log tails:" >&2
            tail -n 20 "$run_dir/gunicorn.log" "$log" >&2 || true
            kill "$pid" 2>/dev/null || true
            exit 1
        fi
        sleep 0.2
    done
    echo "$pid" > "$pidfile"
    echo "keystone-server: running (pid $pid) at $url (run dir $run_dir)"
}

stop() {
    if ! running; then
        rm -f "$pidfile"
        echo "keystone-server: not running on port $port"
        return
    fi
    local pid i
    pid=$(cat "$pidfile")
    kill -INT "$pid"  # quick shutdown (TERM waits for the workers)
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && kill -9 "$pid"
    rm -f "$pidfile"
    echo "keystone-server: stopped (pid $pid)"
}

status() {
    if running; then
        echo "keystone-server: running (pid $(cat "$pidfile")) at $url"
    else
        echo "keystone-server: not running on port $port"
        return 3
    fi
}

case $action in
    start|stop|status) $action ;;
    *) usage ;;
esac
