"""The doorbell: Zaqar tells the bridge which tenant queue has work.

Polling every queue of thousands of tenants costs thousands of requests a
second doing nothing.  Instead, a to_amqp route with ``doorbell_port``
subscribes each of its tenant queues to a webhook served by its workers
(Zaqar's notification pipeline, ``[storage] message_pipeline =
zaqar.notification.notifier`` on zaqar-server).  Every post into such a
queue makes Zaqar POST the message to the bridge, with the header
``X-Bridge-Tenant`` that the subscription carries; the worker that takes
the POST claims from that queue at once.  The POST itself is only a
wake-up: the bridge never trusts or forwards its content, it claims the
real messages from the tenant's queue.

Subscriptions are created with the fewest retries Zaqar accepts, so a
bridge that is restarting doesn't tie up Zaqar's notifier; a missed ring
is caught by the slow safety sweep of the reverse path.  All workers of a
route bind the same port (SO_REUSEPORT); any of them may answer any ring.
"""

import json
import socket
import threading
from wsgiref import simple_server

from oslo_log import log
from zaqarclient.queues.v2 import core as zcore

LOG = log.getLogger(__name__)

TENANT_HEADER = 'X-Bridge-Tenant'
# Long enough to never lapse in practice; the sweep re-creates lost ones.
SUBSCRIPTION_TTL = 10 * 365 * 24 * 3600
# As few retries as Zaqar accepts (it wants maximum_delay - minimum_delay
# >= 20 s, which gives two late tries, after 1 s and 11 s): a missed ring
# costs one sweep interval, it must not tie up Zaqar's notifier workers.
FEW_RETRIES = {'retries_with_no_delay': 0, 'minimum_delay_retries': 0,
               'minimum_delay': 1, 'maximum_delay': 21,
               'maximum_delay_retries': 0}
MAX_BODY = 512 * 1024


def subscribe(client, queue, url, tenant):
    """Make Zaqar ring ``url`` for every message posted to ``queue``.

    Idempotent: Zaqar keeps one subscription per (queue, subscriber).
    One request: zaqarclient's ``client.subscription()`` reads the
    subscription back after creating it.
    """
    req, trans = client._request_and_transport()
    zcore.subscription_create(trans, req, queue, {
        'subscriber': url, 'ttl': SUBSCRIPTION_TTL,
        'options': {'post_headers': {TENANT_HEADER: tenant},
                    '_retry_policy': FEW_RETRIES}})


class _Server(simple_server.WSGIServer):
    allow_reuse_address = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Doorbell:
    """A small HTTP server calling ``ring(tenant, queue)`` per POST."""

    def __init__(self, host, port, ring):
        self.ring = ring
        self.server = simple_server.make_server(
            host, port, self.app, server_class=_Server,
            handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name='doorbell', daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def app(self, environ, start_response):
        if environ['REQUEST_METHOD'] != 'POST':
            start_response('405 Method Not Allowed', [])
            return [b'']
        tenant = environ.get('HTTP_X_BRIDGE_TENANT', '')
        try:
            length = min(int(environ.get('CONTENT_LENGTH') or 0), MAX_BODY)
            data = json.loads(environ['wsgi.input'].read(length) or b'{}')
            queue = data.get('queue_name') if isinstance(data, dict) else None
        except ValueError:
            queue = None
        if tenant and isinstance(queue, str):
            self.ring(tenant, queue)
        start_response('204 No Content', [])
        return [b'']
