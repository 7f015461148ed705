#!/usr/bin/env bash
# Set everything up, run the bridge on the local servers with etc/demo.conf
# and show messages flowing both ways.  Stops what it started at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup-env.sh
mkdir -p .run
bash tools/zaqar-server.sh start --port 8888 --dbids 3,4 --flush
log=.run/demo-bridge.log
: > "$log"
.venv/bin/amqp-zaqar-bridge --config-file etc/demo.conf --log-file "$log" &
bridge=$!
cleanup() {
    kill -TERM "$bridge" 2>/dev/null && wait "$bridge" || true
    bash tools/zaqar-server.sh stop --port 8888 >/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
    [ "$(grep -c 'consuming queue\|connected to RabbitMQ, draining' "$log")" -ge 4 ] && break
    kill -0 "$bridge" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.2
done
echo "bridge running (pid $bridge, log $log); routes:"
.venv/bin/amqp-zaqar-bridge-manage --config-file etc/demo.conf routes
echo
.venv/bin/python tools/demo.py
