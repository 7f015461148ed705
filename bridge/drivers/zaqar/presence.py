"""Who listens on a shared Zaqar queue: a roll call beside it.

RabbitMQ deals the messages of a queue round-robin to its consumers and
copies a notification into the queue of every listener pool bound to its
topic.  Zaqar only answers requests: the first listener to poll after a
post would take everything, and a notifier can't know which pools
listen.  So each listener of a shared queue answers a roll call: it posts
``{"consumer": <id>, "pool": <pool>, "inbox": <queue>, "every": <s>}``
(an RPC server adds ``"server": <name>``) into
``<shared queue>_consumers`` when it starts and every ``every`` seconds
(:data:`ANNOUNCE_EVERY`, or :data:`ANNOUNCE_EVERY_PUSHED` while Zaqar
pushes to it; the entry lives three times that, at least Zaqar's minimum
TTL), and deletes its entries when it stops.  An entry older than 1.5 ×
its ``every`` is a dead listener's (``every`` defaults to
:data:`ANNOUNCE_EVERY`).  ``inbox`` is a queue of the listener's
own.  Reading the roll call tells

* a sender which listeners are alive (an entry younger than :data:`LIVE`
  seconds): it deals messages to their inboxes in turn (:class:`Dealer`),
  one listener per pool for a notification, exactly as RabbitMQ would,
  and refuses an ``at_least_once`` message nobody would take (RabbitMQ's
  mandatory flag);
* a listener how many listeners of its pool also claim the shared queue
  (a bridge posts there), so that it claims its share only, and which of
  them died: it hands what their inboxes hold back to the shared queue.

A dealt message carries ``"shared_queue"``: where it goes back to if its
listener stops (or dies) before taking it.  The roll call is best effort:
when it can't be read or written (no signed URL for it, Zaqar down),
messages go to the shared queue and a listener claims it as if alone.
"""

import logging
import math
import threading
import time

from bridge import backoff
from bridge import naming
from bridge.drivers.zaqar import options
from bridge.drivers.zaqar import transport

LOG = logging.getLogger(__name__)

# Entries are renewed every ANNOUNCE_EVERY seconds (ANNOUNCE_EVERY_PUSHED
# while push works: an idle guest's main cost) and live three times that;
# a listener whose newest entry is older than 1.5 times its period (LIVE
# for the default one) has died.
ANNOUNCE_EVERY = options.ZAQAR_MIN_TTL / 3
ANNOUNCE_EVERY_PUSHED = 60.0
LIVE_FACTOR = 1.5
LIVE = ANNOUNCE_EVERY * LIVE_FACTOR
# Seconds a sender trusts what it read of a roll call (a new listener
# gets its first message within that), and a listener (which reads it to
# claim its share of the shared queue and to find the dead).  While push
# works a listener hears the others' entries as they are posted, and
# reads the roll call when one is new or overdue, and at least every
# LISTENER_REFRESH_PUSHED seconds.
REFRESH = 1.0
LISTENER_REFRESH = 5.0
LISTENER_REFRESH_PUSHED = 600.0


def entry_ttl(every):
    """The TTL of a roll-call entry renewed every ``every`` seconds."""
    return max(options.ZAQAR_MIN_TTL, int(math.ceil(every * 3)))


def live_for(body):
    """Seconds the roll-call entry ``body`` says its listener lives."""
    every = body.get('every') if isinstance(body, dict) else None
    if not isinstance(every, (int, float)) or isinstance(every, bool) \
            or every <= 0:
        every = ANNOUNCE_EVERY
    return every * LIVE_FACTOR
# Pages of a roll call read at most (20 entries each).
MAX_PAGES = 10


def roll_call_queue(queue):
    """The roll-call queue of shared queue ``queue``."""
    return naming.queue_name('%s_consumers' % queue)


def pool_queue(queue, pool):
    """The shared queue of notification listener pool ``pool``."""
    return naming.queue_name('%s.pool.%s' % (queue, pool))


class Member:
    """What the roll call says of one listener."""

    def __init__(self, consumer, pool, inbox, age, server=None, live=LIVE):
        self.consumer = consumer
        self.pool = pool
        self.inbox = inbox
        self.age = age  # of its newest entry, in seconds
        self.server = server  # an RPC server's name
        self.live = live  # seconds its newest entry says it lives

    @property
    def alive(self):
        return self.age <= self.live


def read(zaqar, queue):
    """The listeners of ``queue`` that answered its roll call (a list)."""
    members = {}
    marker = None
    for _ in range(MAX_PAGES):
        entries, next_marker = zaqar.list(roll_call_queue(queue), marker)
        for entry in entries:
            body = entry.get('body')
            if not (isinstance(body, dict)
                    and isinstance(body.get('consumer'), str)
                    and naming.is_valid(body.get('inbox'))):
                continue
            age = entry.get('age', 0)
            known = members.get(body['consumer'])
            if known is None or age < known.age:
                members[body['consumer']] = Member(
                    body['consumer'], body.get('pool'), body['inbox'], age,
                    body.get('server'), live_for(body))
        if not entries or next_marker == marker:
            break
        marker = next_marker
    return sorted(members.values(), key=lambda m: m.consumer)


def hand_back(zaqar, inbox, shared_queue, ttl):
    """Move what ``inbox`` holds back to the shared queues it was dealt
    from (``shared_queue`` for a message that does not say); how many."""
    moved = 0
    for _ in range(MAX_PAGES):
        claim_id, messages = zaqar.claim(inbox, transport.MAX_MESSAGES,
                                         ttl)
        if not messages:
            break
        for message in messages:
            body = message.body
            target = shared_queue
            if isinstance(body, dict) and naming.is_valid(
                    body.get('shared_queue')):
                target = body['shared_queue']
            zaqar.post(target, [body], ttl)
            zaqar.delete(inbox, message.id, claim_id)
            moved += 1
    return moved


class RollCall:
    """A listener's answer to the roll call of shared queue ``queue``.

    :meth:`competitors` counts the live listeners of ``pool`` (this one
    included), posting this listener's entry and reading the roll call
    again when due (:meth:`next_duty`); it also hands back the inboxes of
    the dead.  ``pushed`` (set by the listener) says whether Zaqar pushes
    the roll call's entries; :meth:`heard` takes each pushed one.
    """

    def __init__(self, zaqar, queue, consumer, inbox, pool=None,
                 message_ttl=3600, server=None, clock=time.monotonic):
        self.zaqar = zaqar
        self.queue = queue
        self.name = roll_call_queue(queue)
        self.consumer = consumer
        self.inbox = inbox
        self.pool = pool
        self.server = server
        self.message_ttl = message_ttl
        self.enabled = zaqar.covers(self.name) and zaqar.covers(inbox)
        self.pushed = lambda: False
        self._clock = clock
        self._count = 1
        self._read_at = None
        self._stale = False
        self._announced_at = None
        self._announce_every = ANNOUNCE_EVERY
        # The other live listeners of the pool: consumer -> monotonic time
        # by which a newer entry of theirs is overdue.
        self._due = {}
        self._posted = []
        self._lock = threading.Lock()
        self._failing = False
        self._retry_at = 0.0  # after a failure, not before then

    def _every(self):
        return ANNOUNCE_EVERY_PUSHED if self.pushed() else ANNOUNCE_EVERY

    def next_duty(self):
        """When (monotonic) :meth:`competitors` next posts or reads."""
        if not self.enabled:
            return float('inf')
        with self._lock:
            return max(self._next_duty(), self._retry_at)

    def _next_duty(self):
        if (self._announced_at is None or self._read_at is None
                or self._stale):
            return self._clock()
        every = self._every()
        if every < self._announce_every:  # push stopped: renew sooner
            return self._clock()
        # The last entry promised the next one within its own period.
        duty = min(self._announced_at + self._announce_every,
                   self._read_at + (LISTENER_REFRESH_PUSHED
                                    if self.pushed() else LISTENER_REFRESH))
        if self.pushed() and self._due:
            duty = min(duty, min(self._due.values()))
        return duty

    def announce_soon(self):
        """Post an entry at the next duty (push just started: its own
        entry, pushed back, shows that push works)."""
        with self._lock:
            if self._announced_at is not None:
                self._announced_at = None

    def heard(self, body):
        """A pushed roll-call entry: read the roll call if it is news."""
        if not isinstance(body, dict) or body.get('pool') != self.pool:
            return
        consumer = body.get('consumer')
        if consumer == self.consumer or not isinstance(consumer, str):
            return
        with self._lock:
            if consumer not in self._due:
                self._stale = True
            else:
                self._due[consumer] = self._clock() + live_for(body)

    def competitors(self):
        """Live listeners of this pool on the queue, at least 1 (this)."""
        if not self.enabled:
            return 1
        with self._lock:
            now = self._clock()
            try:
                every = self._every()
                if (self._announced_at is None
                        or now - self._announced_at >= self._announce_every
                        or every < self._announce_every):
                    self._announce(now, every)
                refresh = (LISTENER_REFRESH_PUSHED if self.pushed()
                           else LISTENER_REFRESH)
                if (self._read_at is None or self._stale
                        or now - self._read_at >= refresh
                        or (self.pushed() and self._due
                            and min(self._due.values()) <= now)):
                    self._read_at = now
                    self._stale = False
                    self._count = self._review(read(self.zaqar, self.queue),
                                               now)
                self._failing = False
                self._retry_at = 0.0
            except Exception as exc:
                # Zaqar is not there: try again in a while, not at once.
                self._retry_at = now + LISTENER_REFRESH
                if not self._failing:
                    self._failing = True
                    LOG.warning('Could not answer the roll call of Zaqar '
                                'queue %s (%s); claiming it as if alone',
                                self.queue, backoff.error_text(exc))
            return self._count

    def _announce(self, now, every):
        entry = {'consumer': self.consumer, 'pool': self.pool,
                 'inbox': self.inbox, 'every': every}
        if self.server:
            entry['server'] = self.server
        ids = self.zaqar.post(self.name, [entry], entry_ttl(every))
        self._announced_at = now
        self._announce_every = every
        # The ids of the entries that may still be alive.
        self._posted = (self._posted + list(ids or ()))[-4:]

    def _review(self, members, now):
        mine = [m for m in members if m.pool == self.pool]
        for member in mine:
            if not member.alive and member.consumer != self.consumer:
                moved = hand_back(self.zaqar, member.inbox, self.shared,
                                  self.message_ttl)
                if moved:
                    LOG.info('Handed %d message(s) of a stopped listener '
                             'back to Zaqar queue %s', moved, self.queue)
        # Zaqar counts ages in whole seconds: a second of slack.
        self._due = {m.consumer: now + max(m.live - m.age, 0.0) + 1.0
                     for m in mine
                     if m.alive and m.consumer != self.consumer}
        return max(1, sum(1 for m in mine if m.alive
                          or m.consumer == self.consumer))

    @property
    def shared(self):
        """The queue this listener claims: ``queue``, or its pool's."""
        return pool_queue(self.queue, self.pool) if self.pool else self.queue

    def leave(self):
        """Delete this listener's entries (best effort)."""
        with self._lock:
            posted, self._posted = self._posted, []
        for message_id in posted:
            try:
                self.zaqar.delete(self.name, message_id)
            except Exception as exc:
                LOG.debug('Could not delete roll-call entry %s of %s: %s',
                          message_id, self.queue, backoff.error_text(exc))


class Dealer:
    """Deals a sender's messages to the live listeners of shared queues.

    ``inbox(queue, pool)``: the inbox of the next live listener of
    ``pool`` on ``queue`` in turn, or None (post to the shared queue).
    ``pools(queue)``: the pools with a live listener.
    ``listeners(queue)``: the live listeners, or None when the roll call
    can't be read.
    """

    def __init__(self, zaqar, clock=time.monotonic):
        self.zaqar = zaqar
        self._clock = clock
        self._members = {}  # queue -> (read at, [Member])
        self._turns = {}    # (queue, pool) -> count
        self._lock = threading.Lock()
        self._failing = set()

    def listeners(self, queue):
        now = self._clock()
        with self._lock:
            read_at, members = self._members.get(queue, (None, None))
            if read_at is not None and now - read_at < REFRESH:
                return members
        members = None
        if self.zaqar.covers(roll_call_queue(queue)):
            try:
                members = [m for m in read(self.zaqar, queue) if m.alive
                           and self.zaqar.covers(m.inbox)]
                self._failing.discard(queue)
            except Exception as exc:
                if queue not in self._failing:
                    self._failing.add(queue)
                    LOG.warning('Could not read the roll call of Zaqar '
                                'queue %s, posting to it directly: %s',
                                queue, backoff.error_text(exc))
        with self._lock:
            self._members[queue] = (now, members)
        return members

    def inbox(self, queue, pool=None):
        members = [m for m in self.listeners(queue) or () if m.pool == pool]
        if not members:
            return None
        with self._lock:
            turn = self._turns.get((queue, pool), 0)
            self._turns[(queue, pool)] = turn + 1
        return members[turn % len(members)].inbox

    def pools(self, queue):
        return sorted({m.pool for m in self.listeners(queue) or () if m.pool})
