"""cotyledon services: the worker processes of the daemon.

Each route runs ``workers`` processes of the service for its direction;
the replies service consumes ``[rpc] amqp_reply_queue`` when any route
passes oslo.messaging calls.  Connections are opened in the child
(``run``), never in the manager.  ``terminate`` (SIGTERM) stops taking new
messages, lets the current batch finish or be released, and returns
within the grace period; a worker that dies is respawned by cotyledon with
the same ``worker_id``.
"""

import threading

import cotyledon
from oslo_log import log

LOG = log.getLogger(__name__)


class Worker(cotyledon.Service):
    """A service whose ``run`` is a loop that ``stop`` ends."""

    def __init__(self, worker_id, conf, route=None):
        super().__init__(worker_id)
        self.conf = conf
        self.route = route
        self.name = self.describe()
        self._done = threading.Event()
        self._loop = None

    def describe(self):
        return self.__class__.name

    def build(self):
        """Return the object running the loop (has run() and stop())."""
        raise NotImplementedError

    def run(self):
        from bridge.zaqar import client as zaqar_client
        try:
            self._loop = self.build(zaqar_client.Clients(self.conf))
            self._loop.run()
        finally:
            self._done.set()

    def terminate(self):
        if self._loop is not None:
            self._loop.stop()
            self._done.wait()


class ForwardService(Worker):
    name = 'forward'

    def describe(self):
        return 'forward %s' % self.route.name

    def build(self, clients):
        from bridge.amqp import forward
        return forward.Forwarder(self.conf, self.route, clients)


class ReverseService(Worker):
    name = 'reverse'

    def describe(self):
        return 'reverse %s' % self.route.name

    def build(self, clients):
        from bridge.zaqar import reverse
        return reverse.Reverser(self.conf, self.route, clients,
                                self.worker_id)


class RepliesService(Worker):
    name = 'replies'

    def build(self, clients):
        from bridge.amqp import forward
        from bridge import routing
        from bridge.translate import to_zaqar
        return forward.Forwarder(self.conf, routing.replies_route(self.conf),
                                 clients, translate=to_zaqar.translate_reply)
