#!/usr/bin/env bash
# Prepare a checkout for development and tests (idempotent):
#   .venv        - the project (editable) + test-requirements.txt
#   .zaqar-venv  - zaqar-server, kept apart so its pins never touch .venv
#   RabbitMQ on 127.0.0.1:5672 and Redis on 127.0.0.1:6379, running.
#   .cache/oslo.messaging-<version>: the source of the installed
#                 oslo.messaging, for its functional suite
#                 (tests/functional/test_oslo_functional.py).
# --servers: only .zaqar-venv, the oslo.messaging source and the services
# (tox builds its own venv; its python is the one on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
servers_only=false
[ "${1:-}" = --servers ] && servers_only=true

say() { echo "setup-env: $*"; }

answers() {  # answers PORT: something listens on 127.0.0.1:PORT
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_for() {  # wait_for NAME PORT SECONDS
    local i
    for ((i = 0; i < $3; i++)); do
        answers "$2" && return 0
        sleep 1
    done
    say "$1 does not answer on 127.0.0.1:$2 after $3 s" >&2
    return 1
}

quiet() {  # quiet LOG CMD...: keep pip/apt noise in LOG unless CMD fails
    local log=$1
    shift
    "$@" > "$log" 2>&1 || { tail -n 40 "$log" >&2; return 1; }
}

apt_updated=false
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! $apt_updated; then
        quiet /tmp/setup-env-apt.log apt-get update
        apt_updated=true
    fi
    say "installing $1 (apt)"
    quiet /tmp/setup-env-apt.log apt-get install -y "$1"
}

# Service: NAME PORT BINARY APT-PACKAGE START-COMMAND...
service() {
    local name=$1 port=$2 binary=$3 package=$4
    shift 4
    if answers "$port"; then
        say "$name already answers on :$port"
        return
    fi
    command -v "$binary" >/dev/null || apt_install "$package"
    # A fresh apt install may have started it already.
    if ! answers "$port"; then
        say "starting $name"
        "$@"
    fi
    wait_for "$name" "$port" 60
    say "$name answers on :$port"
}

if ! $servers_only; then
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        "$PYTHON" -m venv .venv
    fi
    # pbr takes the version from git; a checkout without commits has none.
    git rev-parse -q --verify HEAD >/dev/null 2>&1 || export PBR_VERSION=0.1.0
    stamp=$(cat setup.py setup.cfg requirements.txt test-requirements.txt |
        sha256sum | cut -d' ' -f1)
    if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ] ||
        ! .venv/bin/pip show -q amqp-zaqar-bridge 2>/dev/null; then
        say "installing the project (editable) and test deps into .venv"
        quiet .venv/pip.log .venv/bin/pip install -e . -r test-requirements.txt
        echo "$stamp" > .venv/.setup-stamp
    else
        say ".venv up to date"
    fi
fi

if [ ! -x .zaqar-venv/bin/zaqar-server ]; then
    say "creating .zaqar-venv (zaqar, redis, gunicorn)"
    "$PYTHON" -m venv .zaqar-venv
    quiet .zaqar-venv/pip.log .zaqar-venv/bin/pip install zaqar redis gunicorn
else
    say ".zaqar-venv present"
fi

# oslo.messaging's functional suite ships in its source, not always in
# its wheel: fetch the source of the version installed.
py=.venv/bin/python
$servers_only && py=python
om_version=$("$py" -c 'import importlib.metadata as m
print(m.version("oslo.messaging"))')
om_dir=.cache/oslo.messaging-$om_version
if [ ! -f "$om_dir/oslo_messaging/tests/functional/test_functional.py" ]; then
    say "fetching the oslo.messaging $om_version source into $om_dir"
    om_tmp=$(mktemp -d)
    quiet /tmp/setup-env-oslo-messaging.log "$py" -m pip download \
        "oslo.messaging==$om_version" --no-binary :all: --no-deps -d "$om_tmp"
    mkdir -p "$om_dir"
    tar -xzf "$om_tmp"/*.tar.gz -C "$om_dir" \
        --strip-components=1
    rm -rf "$om_tmp"
else
    say "oslo.messaging $om_version source present"
fi

service RabbitMQ 5672 rabbitmq-server rabbitmq-server \
    rabbitmq-server -detached
service Redis 6379 redis-server redis-server \
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
    --save "" --appendonly no
