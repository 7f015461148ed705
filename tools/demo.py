"""Show messages flowing through a running bridge (used by tools/demo.sh).

A controller casts and calls guests with oslo.messaging on RabbitMQ; two
guests, one per tenant, read their Zaqar queues with zaqarclient, answer
the calls and send a heartbeat back; a controller-side RPC server receives
the heartbeats.  One line per message on each hop.
"""

import sys
import threading
import time
import warnings

warnings.simplefilter("ignore")  # eventlet/executor deprecation noise

from oslo_config import cfg  # noqa: E402
from oslo_context import context  # noqa: E402
import oslo_messaging  # noqa: E402
from zaqarclient.queues.v2 import client as zclient  # noqa: E402

ZAQAR = 'http://127.0.0.1:8888'
RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'
TENANTS = {'demo-tenant-a': 'guest-a', 'demo-tenant-b': 'guest-b'}


def say(*args):
    print('%7.3f' % (time.monotonic() - START), *args, flush=True)


class Conductor:
    def heartbeat(self, ctxt, instance_id):
        say('controller <- heartbeat from %s (context project %s)'
            % (instance_id, ctxt.get('project_id')))


def guest(tenant, name, stop):
    z = zclient.Client(ZAQAR, version=2, conf={'auth_opts': {
        'backend': 'noauth', 'options': {'os_project_id': tenant}}})
    queue = z.queue('guestagent_%s' % name)
    while not stop.is_set():
        for m in queue.claim(ttl=60, grace=60, limit=10):
            msg = m.body['message']
            say('%s (%s) <- zaqar %s: %s(%s)' % (name, tenant, queue.name,
                                                msg['method'], msg['args']))
            if 'reply' in m.body:
                z.queue(m.body['reply']['queue']).post([{'ttl': 60, 'body': {
                    'bridge': 1, 'reply_token': m.body['reply']['token'],
                    'message': {'result': 'pong from %s' % name,
                                'failure': None, 'ending': True}}}])
            else:
                z.queue('demo-conductor').post([{'ttl': 60, 'body': {
                    'bridge': 1, 'message': {
                        'method': 'heartbeat', 'args': {'instance_id': name},
                        '_context_project_id': 'somebody-else'}}}])
            m.delete()
        time.sleep(0.05)


def main():
    cfg.CONF([], project='amqp-zaqar-bridge-demo')
    oslo_messaging.set_transport_defaults('demo')
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=RABBIT)
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic='demo-conductor',
                                         server='controller'),
        [Conductor()], executor='threading')
    server.start()
    stop = threading.Event()
    for tenant, name in TENANTS.items():
        threading.Thread(target=guest, args=(tenant, name, stop),
                         daemon=True).start()
    for round_ in range(3):
        for tenant, name in TENANTS.items():
            client = oslo_messaging.get_rpc_client(
                transport, oslo_messaging.Target(topic='guestagent.%s' % name),
                timeout=30)
            ctxt = context.RequestContext(project_id=tenant).to_dict()
            say('controller -> cast prepare to guestagent.%s (%s)'
                % (name, tenant))
            client.cast(ctxt, 'prepare', round=round_)
            t0 = time.monotonic()
            result = client.call(ctxt, 'ping', round=round_)
            say('controller <- call ping answered %r in %.0f ms'
                % (result, (time.monotonic() - t0) * 1000))
    time.sleep(2)
    stop.set()
    server.stop()
    server.wait()
    say('demo done')
    return 0


START = time.monotonic()

if __name__ == '__main__':
    sys.exit(main())
