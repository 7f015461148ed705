"""Answers to the ``zaqar://`` driver's own calls.

One reply queue per driver (``_reply_q`` of its requests): the
:class:`ReplyWaiter` pops it while a call waits and routes each reply to
its caller by ``_msg_id``, as amqpdriver's ReplyWaiter does.
"""

import logging
import queue as queue_mod
import threading

import oslo_messaging
from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import common as rpc_common

from bridge import backoff
from bridge import envelope
from bridge import wire
from bridge.drivers.zaqar import incoming
from bridge.drivers.zaqar import transport

LOG = logging.getLogger(__name__)


class ReplyWaiter:
    """Reads the driver's reply queue and routes replies by ``_msg_id``.

    Only this driver reads its reply queue, so replies are popped (read
    and deleted in one request).  The queue is only polled while a call is
    waiting.
    """

    def __init__(self, driver, queue):
        self.driver = driver
        self.queue = queue
        self.allowed_remote_exmods = driver._allowed_remote_exmods
        self.seen = incoming.SeenIds()
        self._waiters = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._backoff = driver.poll_backoff()
        self._rung = False  # a push arrived: poll now
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='zaqar-reply-waiter')
        self._thread.start()
        self._doorbell = driver.doorbell([queue], self._ring,
                                         'zaqar-push-reply')

    def _ring(self, queue):
        with self._cond:
            self._rung = True
            self._cond.notify()

    def listen(self, msg_id):
        with self._cond:
            self._waiters[msg_id] = queue_mod.Queue()
            # A new call: poll often again, starting now.
            self._backoff.reset()
            self._cond.notify()

    def unlisten(self, msg_id):
        with self._cond:
            self._waiters.pop(msg_id, None)

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._doorbell is not None:
            self._doorbell.stop()
        self._thread.join()

    def _run(self):
        while True:
            with self._cond:
                if not self._waiters:
                    while not self._waiters and not self._stopped:
                        self._cond.wait()
                    # The call is being posted: no reply before that.
                    if not self._rung:
                        self._cond.wait(self._backoff.initial)
                if self._stopped:
                    return
                self._rung = False
            try:
                found = self._fetch()
            except Exception as exc:
                LOG.warning('Could not read reply queue %s: %s', self.queue,
                            backoff.error_text(exc))
                found = 0
            with self._cond:
                if found:
                    self._backoff.reset()
                elif not self._stopped and not self._rung:
                    self._cond.wait(self._backoff.next())

    def _fetch(self):
        found = 0
        for raw in self.driver.zaqar.pop(self.queue, transport.MAX_MESSAGES):
            try:
                _, message, dedup_id = incoming.parse_body(raw.body, 'reply')
            except (wire.WireError, envelope.EnvelopeError) as exc:
                LOG.warning('Dropping Zaqar message %s from reply queue %s:'
                            ' %s', raw.id, self.queue, exc)
                continue
            if not self.seen.add(dedup_id):
                continue
            message = dict(message)
            msg_id = message.pop('_msg_id', None)
            message.pop(rpc_amqp.UNIQUE_ID, None)
            with self._cond:
                waiter = self._waiters.get(msg_id)
            if waiter is None:
                LOG.info('No call is waiting for reply %s any more', msg_id)
                continue
            waiter.put(message)
            found += 1
        return found

    @staticmethod
    def _timed_out(msg_id, reply_q):
        raise oslo_messaging.MessagingTimeout(
            'Timed out waiting for a reply %(reply_q)s to message ID '
            '%(msg_id)s.' % {'msg_id': msg_id, 'reply_q': reply_q})

    def wait(self, msg_id, timeout, call_monitor_timeout):
        """The result of call ``msg_id`` (as amqpdriver.ReplyWaiter)."""
        with self._cond:
            replies = self._waiters[msg_id]
        timer = rpc_common.DecayingTimer(duration=timeout)
        timer.start()
        monitor = None
        if call_monitor_timeout:
            monitor = rpc_common.DecayingTimer(duration=call_monitor_timeout)
            monitor.start()
        while True:
            left = timer.check_return(self._timed_out, msg_id, self.queue)
            if monitor is not None:
                cm_left = monitor.check_return(self._timed_out, msg_id,
                                               self.queue)
                left = cm_left if left is None else min(left, cm_left)
            try:
                message = replies.get(timeout=left)
            except queue_mod.Empty:
                self._timed_out(msg_id, self.queue)
            if message.get('ending', True) is False:
                LOG.debug('Call monitor heartbeat for %s', msg_id)
                if monitor is not None:
                    monitor.restart()
                continue
            if message.get('failure'):
                return rpc_common.deserialize_remote_exception(
                    message['failure'], self.allowed_remote_exmods)
            return message.get('result')
