"""Answers to the ``zaqar://`` driver's own calls.

One reply queue per driver (``_reply_q`` of its requests): the
:class:`ReplyWaiter` pops it while a call waits and routes each reply to
its caller by ``_msg_id``, as amqpdriver's ReplyWaiter does.

A caller knows a reply is due, so the queue is only read while a call
waits, and soon: when Zaqar pushes the reply (push.py), else on a
schedule that looks :data:`FIRST_LOOK` after the call is sent and then at
gaps growing by :data:`GROWTH` (the wait added to a reply stays under a
quarter of the time it took) up to ``poll_interval_min``, held there for
``poll_interval_max`` seconds, then doubling up to ``poll_interval_max``.
While push works the queue is read when a push rings and, in case one is
lost, after ``max(poll_interval_max, 1)`` seconds, doubling up to
``max(poll_interval_max, 5)``.
"""

import logging
import queue as queue_mod
import threading
import time

import oslo_messaging
from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import common as rpc_common

from bridge import backoff
from bridge import envelope
from bridge import wire
from bridge.drivers.zaqar import incoming
from bridge.drivers.zaqar import transport

LOG = logging.getLogger(__name__)

# Seconds from a call to the first look at its reply queue (without push),
# and how each gap grows on the next.
FIRST_LOOK = 0.005
GROWTH = 1.25
# While push works: the first safety look, and the longest gap, at least.
PUSHED_FIRST_LOOK = 1.0
PUSHED_MAX_GAP = 5.0


class LookSchedule:
    """Gaps between looks at the reply queue while a call waits.

    After :meth:`reset` (a call was sent, or a reply found): ``first``,
    then each gap ``growth`` times the last, up to ``minimum``; ``minimum``
    until ``hold`` seconds passed; then doubling up to ``maximum``.
    """

    def __init__(self, first, growth, minimum, hold, maximum,
                 clock=time.monotonic):
        self.first = min(first, minimum)
        self.growth = growth
        self.minimum = minimum
        self.hold = hold
        self.maximum = max(minimum, maximum)
        self._clock = clock
        self.reset()

    def reset(self):
        self._gap = None
        self._hold_until = self._clock() + self.hold

    def next(self):
        if self._gap is None:
            self._gap = self.first
        elif self._gap < self.minimum:
            self._gap = min(self.minimum, self._gap * self.growth)
        elif self._clock() >= self._hold_until:
            self._gap = min(self.maximum, self._gap * 2)
        return self._gap


class ReplyWaiter:
    """Reads the driver's reply queue and routes replies by ``_msg_id``.

    Only this driver reads its reply queue, so replies are popped (read
    and deleted in one request).  The queue is only read while a call is
    waiting (see the module's docstring for when).
    """

    def __init__(self, driver, queue):
        self.driver = driver
        self.queue = queue
        self.allowed_remote_exmods = driver._allowed_remote_exmods
        self.seen = incoming.SeenIds()
        self._waiters = {}
        self._cond = threading.Condition()
        self._stopped = False
        opts = driver.opts
        self._polled = LookSchedule(FIRST_LOOK, GROWTH,
                                    opts.poll_interval_min,
                                    opts.poll_interval_max,
                                    opts.poll_interval_max)
        self._pushed = LookSchedule(
            max(PUSHED_FIRST_LOOK, opts.poll_interval_max), 2.0,
            max(PUSHED_FIRST_LOOK, opts.poll_interval_max), 0.0,
            max(PUSHED_MAX_GAP, opts.poll_interval_max))
        self._next_look = None  # monotonic time; None: no call waits
        self._rung = False  # a push arrived: look now
        # Zaqar pushed a reply (a subscribed socket alone does not prove
        # the HTTP zaqar-server notifies); withdrawn when a look finds a
        # reply nothing rang for.
        self._trusted = False
        self._doorbell = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='zaqar-reply-waiter')
        self._thread.start()
        self._doorbell = driver.doorbell([queue], self._ring,
                                         'zaqar-push-reply')

    def _pushing(self):
        doorbell = self._doorbell
        return (self._trusted and doorbell is not None
                and doorbell.subscribed.is_set())

    def _schedule(self):
        return self._pushed if self._pushing() else self._polled

    def _ring(self, queue, body):
        with self._cond:
            self._rung = True
            if queue is not None:
                self._trusted = True
            self._cond.notify()

    def listen(self, msg_id):
        with self._cond:
            self._waiters[msg_id] = queue_mod.Queue()
            # A new call: look soon again, from now on.
            self._polled.reset()
            self._pushed.reset()
            self._next_look = time.monotonic() + self._schedule().next()
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
                while True:
                    if self._stopped:
                        return
                    if self._waiters:
                        if self._rung:
                            break
                        left = self._next_look - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    else:
                        self._rung = False  # nobody waits for it
                        self._cond.wait()
                rung, self._rung = self._rung, False
            try:
                found = self._fetch()
            except Exception as exc:
                LOG.warning('Could not read reply queue %s: %s', self.queue,
                            backoff.error_text(exc))
                found = 0
            with self._cond:
                if found and not rung and self._pushing():
                    self._trusted = False   # not pushed: poll again
                    LOG.debug('Zaqar did not push a reply found in %s',
                              self.queue)
                if found:  # more replies may be due soon (other callers)
                    self._polled.reset()
                    self._pushed.reset()
                self._next_look = time.monotonic() + self._schedule().next()

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
