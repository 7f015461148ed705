"""The ``zaqar://`` listener: polls its queues, hands out messages.

RPC requests are popped (read and deleted in one request: acknowledged
on receipt, before dispatch, as oslo.messaging's rabbit driver
acknowledges them in its consumer callback); notifications are claimed
(one listener handles each) and deleted when acknowledged, after
dispatch; fanout casts are listed from a marker taken when listening
starts (pub/sub), never claimed or deleted, they expire after
``fanout_ttl``.

With push (push.py) a listener reads the queue Zaqar rang for, and
otherwise reads all its queues only every ``push_poll_interval`` seconds;
without it, as often as ``poll_interval_min``/``poll_interval_max`` say.
A push can come before its message can be read: rings.py says when to
read a rung queue again.
"""

import collections
import logging
import math
import random
import threading
import time

from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import base

from bridge import backoff
from bridge import envelope
from bridge import wire
from bridge.drivers.zaqar import incoming
from bridge.drivers.zaqar import presence
from bridge.drivers.zaqar import rings
from bridge.drivers.zaqar import transport

LOG = logging.getLogger(__name__)

# A fanout message whose age exceeds the listener's by more than this was
# posted before the listener started (Zaqar reports ages in whole seconds).
FANOUT_AGE_SLACK = 1.0


class ClaimedQueue:
    """A queue whose messages go to one listener each.

    Claimed, then deleted when acknowledged (notifications); or, with
    ``pop``, popped: removed as they are read (RPC requests, at most
    once).
    """

    # When to fetch again although nothing rang (a SharedQueue's turn).
    retry_at = None

    def __init__(self, zaqar, name, claim_ttl, acks=None, pop=False):
        self.zaqar = zaqar
        self.name = name
        self.claim_ttl = claim_ttl
        self.acks = acks
        self.pop = pop

    def fetch(self):
        return self._claim(transport.MAX_MESSAGES)

    def _claim(self, limit):
        if self.pop:
            return [incoming.Raw(self.name, m.id, m.body, m.age, None)
                    for m in self.zaqar.pop(self.name, limit)]
        claim_id, messages = self.zaqar.claim(self.name, limit,
                                              self.claim_ttl)
        if not messages:
            return []
        claim = incoming.Claim(self.zaqar, self.name, claim_id, len(messages),
                               self.claim_ttl, self.acks)
        return [incoming.Raw(self.name, m.id, m.body, m.age, claim)
                for m in messages]

    def drop(self, raw):
        if raw.claim is not None:  # a popped message is gone already
            raw.claim.delete(raw.id)

    def close(self):
        pass


class SharedQueue(ClaimedQueue):
    """A claimed queue other listeners may read too: each takes a share.

    Guests deal their messages to the listeners' inboxes; what reaches
    the shared queue itself (posted by a bridge, or by a sender without
    access to the roll call) is shared by claims.  The roll call
    (presence.RollCall) says how many listeners compete: alone, this one
    claims as much as Zaqar gives; one of ``n``, it claims
    ``ceil(free / n)`` of the free messages, then lets ``turn`` seconds
    pass before claiming here again, long enough for every other
    listener, which polls at least every poll_interval_max, to take its
    share first.  ``retry_at`` then says when to look again (with push,
    nothing rings for what the others leave).
    """

    def __init__(self, zaqar, name, claim_ttl, roll_call, turn, acks=None,
                 clock=time.monotonic, pop=False):
        super().__init__(zaqar, name, claim_ttl, acks, pop)
        self.roll_call = roll_call
        self.turn = turn
        self._clock = clock
        self._next_turn = 0.0
        self.retry_at = None

    def fetch(self):
        self.retry_at = None
        competitors = self.roll_call.competitors()
        if competitors <= 1:
            return super().fetch()
        now = self._clock()
        if now < self._next_turn:
            self.retry_at = self._next_turn
            return []
        free = self.zaqar.free(self.name)
        if not free:
            return []
        limit = min(transport.MAX_MESSAGES, math.ceil(free / competitors))
        raws = self._claim(limit)
        if raws and limit < transport.MAX_MESSAGES:
            self._next_turn = now + self.turn
            if free > len(raws):
                self.retry_at = self._next_turn
        return raws


class Inbox(ClaimedQueue):
    """A listener's own queue, where senders deal it messages in turn.

    When the listener stops it leaves the roll calls it answered and,
    once senders have seen that (presence.REFRESH), hands what is left in
    its inbox back to the shared queues and deletes it.
    """

    def __init__(self, zaqar, name, claim_ttl, roll_calls, message_ttl,
                 acks=None, pop=False):
        super().__init__(zaqar, name, claim_ttl, acks, pop)
        self.roll_calls = roll_calls
        self.message_ttl = message_ttl

    def close(self):
        for roll_call in self.roll_calls:
            roll_call.leave()
        time.sleep(presence.REFRESH)
        try:
            presence.hand_back(self.zaqar, self.name,
                               self.roll_calls[0].shared, self.message_ttl)
            # Each listener has an inbox of its own: don't leave them
            # piling up in Zaqar (RabbitMQ auto-deletes such queues).
            self.zaqar.delete_queue(self.name)
        except Exception as exc:
            LOG.warning('Could not hand the messages of Zaqar queue %s back '
                        '(they expire there): %s', self.name,
                        backoff.error_text(exc))


class FanoutQueue:
    """A queue every listener reads in full: listed from a marker.

    The marker starts at the end of the queue, so a new listener only
    sees what is posted after it started; messages Zaqar reports as older
    than the listener are skipped too (a marker can be lost, see
    :meth:`fetch`).
    """

    retry_at = None

    def __init__(self, zaqar, name, fanout_ttl):
        self.zaqar = zaqar
        self.name = name
        self.fanout_ttl = fanout_ttl
        self.marker = None
        self.started = time.monotonic()
        self.last_hit = self.started
        try:
            while True:
                messages, self.marker = zaqar.list(name, self.marker)
                if not messages:
                    break
        except Exception as exc:
            LOG.warning('Could not find the end of fanout queue %s, will '
                        'skip its old messages by age: %s', name,
                        backoff.error_text(exc))

    def fetch(self):
        now = time.monotonic()
        if self.marker and now - self.last_hit > self.fanout_ttl:
            # Zaqar/Redis lists at most one page after the marker and
            # returns nothing when that page only holds expired messages:
            # once everything we could have missed has expired, start from
            # the first live message again (dedup drops what we saw).
            self.marker = None
            self.last_hit = now
        messages, self.marker = self.zaqar.list(self.name, self.marker)
        if messages:
            self.last_hit = now
        horizon = now - self.started + FANOUT_AGE_SLACK
        return [incoming.Raw(self.name, m['id'], m.get('body'),
                             m.get('age', 0), None)
                for m in messages if m.get('age', 0) <= horizon]

    def drop(self, raw):
        # Nobody can use it: spare the other listeners the log line.
        self.zaqar.delete(self.name, raw.id)

    def close(self):
        pass


class ZaqarListener(base.PollStyleListener):
    """Polls its queues in turn and hands out one message at a time.

    A queue push rang for is read (a *fetch* of it alone) at once, and
    again shortly while the pushed message is not found (rings.py).
    All the queues are read when push (re)starts, when the last fetch
    found something (unless it read a rung queue to its end while push
    works: what comes next rings), and otherwise after a pause:
    ``push_poll_interval`` while push works, the poll backoff while it
    does not.  Between
    fetches the roll calls of its shared queues are tended (an entry
    posted, the roll call read) when they are due.

    Push is trusted once Zaqar pushed something posted over HTTP (the
    listener's own roll-call entry does, at once): a subscribed socket
    alone does not prove the HTTP zaqar-server notifies (its
    message_pipeline).  A safety-net poll that finds a message nothing
    rang for withdraws the trust until the next push.
    """

    def __init__(self, driver, sources, kind, message_cls,
                 clock=time.monotonic):
        super().__init__()
        self.driver = driver
        self.sources = sources
        self.kind = kind
        self.message_cls = message_cls
        self.seen = incoming.SeenIds()
        self.incoming = collections.deque()
        self._clock = clock
        self._next_source = 0
        self._stopped = threading.Event()
        self._backoff = driver.poll_backoff()
        self._push_interval = driver.opts.push_poll_interval
        self._next_fetch = 0.0   # the first poll reads the queues
        self._fetch_now = False  # read all the queues now
        self._rung = rings.Rings()  # queues push rang for, to read
        self._drained = False     # the last fetch read a rung queue empty
        self._safety_net = False  # the next fetch is push's safety net
        self._trusted = False     # Zaqar pushed what was posted
        self.roll_calls = {s.roll_call.name: s.roll_call for s in sources
                           if isinstance(s, SharedQueue)
                           and s.roll_call.enabled}
        # Set by stop() and by the push doorbell: look now.
        self._wake = threading.Event()
        self._doorbell = driver.doorbell(
            [s.name for s in sources] + sorted(self.roll_calls), self._ring,
            'zaqar-push-' + kind)
        for roll_call in self.roll_calls.values():
            roll_call.pushed = self.pushing

    def pushing(self):
        """True while Zaqar pushes this listener's messages."""
        return (self._trusted and self._doorbell is not None
                and self._doorbell.subscribed.is_set())

    def _ring(self, queue, body):
        if queue is not None and not self._trusted:
            self._trusted = True
            LOG.debug('Zaqar pushes the messages of %s',
                      [s.name for s in self.sources])
        roll_call = self.roll_calls.get(queue)
        if roll_call is not None:
            roll_call.heard(body)
        elif queue is not None:   # a message
            self._pushed(queue, body)
        else:   # push (re)started or stopped
            self._fetch_now = True
        doorbell = self._doorbell
        if (queue is None and not self._trusted and doorbell is not None
                and doorbell.subscribed.is_set()):
            # Subscribed: its own roll-call entry, posted now and pushed
            # back, shows whether Zaqar pushes what is posted over HTTP.
            for roll_call in self.roll_calls.values():
                roll_call.announce_soon()
        self._wake.set()

    def _pushed(self, queue, body):
        """Zaqar pushed ``body``, posted to ``queue``: read it now."""
        try:
            dedup_id = incoming.parse_body(body, self.kind)[2]
        except Exception:   # not a message of ours: read the queue anyway
            dedup_id = None
        self._rung.pushed(queue, dedup_id)

    def _pause(self):
        """Seconds to the next fetch after one that found nothing."""
        if self.pushing():
            return self._push_interval * random.uniform(0.9, 1.1)
        return self._backoff.next()

    @base.batch_poll_helper
    def poll(self, timeout=None):
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            if self.incoming:
                return self.incoming.popleft()
            if self._stopped.is_set():
                return None
            now = self._clock()
            every = self._fetch_now or now >= self._next_fetch
            if every or now >= self._rung.next_due():
                safety_net = (every and self._safety_net
                              and not self._fetch_now)
                if every:
                    self._fetch_now = self._safety_net = False
                if self._fetch(every):
                    if safety_net and self.pushing():
                        self._distrust()
                    self._backoff.reset()
                    if not (self._drained and self.pushing()):
                        self._next_fetch = 0.0
                    continue
                if every:
                    self._safety_net = self.pushing()
                    self._next_fetch = self._clock() + self._pause()
                    for source in self.sources:
                        if (source.retry_at is not None
                                and source.retry_at < self._next_fetch):
                            self._next_fetch = source.retry_at
                            self._safety_net = False
            else:
                self._tend()
            wake_at = min(self._next_fetch, self._rung.next_due())
            for roll_call in self.roll_calls.values():
                wake_at = min(wake_at, roll_call.next_duty())
            if deadline is not None:
                if self._clock() >= deadline:
                    return None
                wake_at = min(wake_at, deadline)
            self._wake.wait(max(0.0, wake_at - self._clock()))
            self._wake.clear()

    def _distrust(self):
        self._trusted = False
        LOG.warning('Zaqar did not push messages a poll found in %s (does '
                    'the HTTP zaqar-server run message_pipeline = '
                    'zaqar.notification.notifier?); polling as without '
                    'push until a push arrives',
                    [s.name for s in self.sources])

    def _tend(self):
        """Post to, or read, the roll calls when due (between fetches)."""
        for roll_call in self.roll_calls.values():
            if roll_call.next_duty() <= self._clock():
                roll_call.competitors()

    def _fetch(self, every=True):
        """Read the queues rung for that are due, then (``every``) the
        others in turn, until one yields messages.

        Returns how many were kept.  The next fetch starts with the queue
        after that one, so a busy queue can't starve the others, and a
        message is handed over without waiting for the other queues.
        """
        count = len(self.sources)
        rung = self._rung.due(self._clock())
        rung_at_start = set(rung)
        order = [i for i, s in enumerate(self.sources) if s.name in rung]
        if every:
            order += [i for i in ((self._next_source + step) % count
                                  for step in range(count))
                      if i not in order]
        for index in order:
            source = self.sources[index]
            kept = 0
            try:
                raws = source.fetch()
            except Exception as exc:
                LOG.warning('Could not read Zaqar queue %s: %s',
                            source.name, backoff.error_text(exc))
                raws = ()
            for raw in raws:
                message = self._accept(source, raw)
                if message is not None:
                    self.incoming.append(message)
                    kept += 1
            if source.name in rung:
                self._rung.fetched(source.name, rung.pop(source.name), kept,
                                   self.seen, self._clock())
            if kept:
                self._next_source = (index + 1) % count
                # A rung queue read to the end: the next push says when
                # there is more (the others ring for their own messages).
                self._drained = (source.name in rung_at_start
                                 and len(raws) < transport.MAX_MESSAGES
                                 and source.retry_at is None)
                return kept
        self._rung.forget(rung)   # rung, but no source of this listener
        return 0

    def _accept(self, source, raw):
        try:
            data, message, dedup_id = incoming.parse_body(raw.body, self.kind)
        except (wire.WireError, envelope.EnvelopeError) as exc:
            LOG.warning('Dropping Zaqar message %s from queue %s: %s',
                        raw.id, raw.queue, exc)
            self._drop(source, raw)
            return None
        if not self.seen.add(dedup_id):
            LOG.debug('Dropping Zaqar message %s from queue %s: already '
                      'received', raw.id, raw.queue)
            if raw.claim is not None:
                self._drop(source, raw)
            return None
        message = dict(message)
        ctxt = rpc_amqp.unpack_context(message)
        unique_id = message.pop(rpc_amqp.UNIQUE_ID, None)
        LOG.debug('Received %s %s from queue %s (msg_id %s)', self.kind,
                  unique_id, raw.queue, ctxt.msg_id)
        return self.message_cls(self, raw, dedup_id, data.get('reply'), ctxt,
                                message, unique_id)

    @staticmethod
    def _drop(source, raw):
        try:
            source.drop(raw)
        except Exception as exc:
            LOG.warning('Could not delete Zaqar message %s from queue %s: '
                        '%s', raw.id, raw.queue, backoff.error_text(exc))

    def stop(self):
        self._stopped.set()
        self._wake.set()
        if self._doorbell is not None:
            self._doorbell.stop(wait=False)

    def cleanup(self):
        if self._doorbell is not None:
            self._doorbell.stop()
        for source in self.sources:
            source.close()
