"""Build a bridge configuration from text, as the daemon would, and run
the translations on routes read from it."""

import json
import textwrap

from bridge.daemon import config
from bridge import envelope
from bridge.flows import reverse
from bridge.translate import to_amqp
from bridge.translate import to_zaqar

BASE = '''
[DEFAULT]
routes = {routes}
[rpc]
reply_secret = test-secret
'''


def load(tmp_path, text, routes='r1', base=True):
    path = tmp_path / 'bridge.conf'
    content = (BASE.format(routes=routes) if base else '') + \
        textwrap.dedent(text)
    path.write_text(content)
    conf = config.prepare_service(['--config-file', str(path)])
    return conf, config.load_routes(conf)


# Routes of both directions for the translation tests.
ROUTES = '''
[route:fwd]
direction = to_zaqar
exchange = trove
tenant = context:project_id
[route:raw]
direction = to_zaqar
envelope = raw
exchange = events
tenant = routing_key:^(?P<tenant>[a-z-]+)\\.
zaqar_queue = events-{topic}
[route:rev]
direction = to_amqp
exchange = trove
zaqar_queue = trove-conductor
tenants = tenant-a, tenant-b
allowed_methods = heartbeat
allowed_event_types = trove.instance.*
[route:shared-fwd]
direction = to_zaqar
exchange = trove
tenant = context:project_id
zaqar_queue = {tenant}-{routing_key}
reply_queue = {tenant}-replies
[route:shared-rev]
direction = to_amqp
exchange = trove
zaqar_queue = {tenant}-conductor
routing_key = trove-conductor
tenants = tenant-a, tenant-b
allowed_methods = heartbeat
guest_reply_queue = {tenant}-reply_*
[route:by-server]
direction = to_zaqar
exchange = trove
tenant = context:project_id
zaqar_queue = {server}
'''


def oslo_body(**msg):
    return json.dumps(envelope.wrap(msg)).encode()


def fwd(setup, body, routing_key='guestagent.abc', name='fwd', **kw):
    conf, routes = setup
    return to_zaqar.translate(routes[name], conf, lambda t: t, body,
                              routes[name].exchange, routing_key, **kw)


def rev(setup, body, tenant='tenant-a', used=None, name='rev',
        queue='trove-conductor'):
    conf, routes = setup
    return to_amqp.translate(routes[name], conf, tenant, queue, body, 'zid',
                             used)


class FakeClients:
    """What Reverser needs of bridge.zaqar.clients.Clients."""

    def __init__(self, found):
        self.found = found
        self.asked = 0

    def project_of(self, tenant):
        return tenant

    def trusted_projects(self):
        self.asked += 1
        if isinstance(self.found, Exception):
            raise self.found
        return set(self.found)


def reverser(tmp_path, clients, worker_id=0, workers=2, metrics=None,
             zaqar_queue='conductor-{tenant}'):
    conf, routes = load(tmp_path, '''
        [zaqar]
        auth_strategy = keystone
        tenant_access = trusts
        auth_type = password
        auth_url = http://127.0.0.1:1/v3
        [route:r1]
        direction = to_amqp
        exchange = x
        zaqar_queue = %s
        routing_key = conductor
        tenants = static-1
        tenant_discovery = trusts
        tenant_discovery_interval = 30
        allowed_methods = heartbeat
        workers = %d
        ''' % (zaqar_queue, workers))
    return reverse.Reverser(conf, routes[0], clients, worker_id,
                            metrics=metrics)
