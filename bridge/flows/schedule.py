"""When the reverse path looks at which tenant queue.

Without a doorbell, an empty queue is polled less and less often, from
every 0.05 s up to ``poll_interval``.  With a doorbell, an empty queue is
not polled at all until it rings; a slow sweep looks at one queue every
``sweep_interval`` seconds in turn, to catch a ring that was lost.  Either
way a queue that yielded messages is claimed again at once until it is
empty, except that with a doorbell a claim that came back short (fewer
than asked: the queue is drained) and took every message that rang is
not followed by an empty one: the next ring says when to look again.

Zaqar rings once per message, before it stores the message, so a claim
can come back without a message that rang.  Such a ring is remembered
(``unclaimed``) and the queue looked at once more ``RECHECK`` seconds
later; then the ring is forgotten (another bridge may have claimed the
message; the sweep is the last resort).

An answer due (bridge/flows/answers_due.py: the forward flow has just
posted a call whose answer comes to this queue) makes the queue due at
the moment answers usually come, and again a growing step later while
the answer is not there, for a short window; with or without a doorbell.

Rings that can have been lost (the worker was starting, the doorbell or
Zaqar was unreachable) are bridge/flows/recovery.py's business: it looks
at queues without claiming (their stats) and tells the schedule what it
saw (:meth:`Schedule.looked`).  A message whose claim may expire without
a ring (a delete that failed, a claim of a worker that died) is looked
for again when that claim has expired (:meth:`Schedule.look_at`).

Fairness: each round claims at most once (``claim_limit`` messages) from
each due queue, so a busy tenant can't starve the others, and a tenant
over ``tenant_rate_limit`` messages per second waits, its overflow kept in
Zaqar, never dropped.
"""

import threading
import time

from bridge.flows import answers_due

MIN_POLL = 0.05
NEVER = float('inf')
# Seconds before looking again for a message that rang but was not there.
RECHECK = 0.2


class TenantQueue:
    """One queue to drain, and when to look at it next.

    A worker holds one per tenant queue of its route (10,000 and more):
    slots, and nothing else per queue (the Zaqar client is made per use).
    """

    __slots__ = ('tenant', 'project', 'name', 'owned', 'next_poll',
                 'subscribed', 'rings', 'unclaimed', 'rechecked', 'swept',
                 'idle', 'rate', 'tokens', 'refilled', 'canary')

    def __init__(self, tenant, project, name, rate=0.0, owned=True,
                 canary=False):
        self.tenant = tenant
        self.project = project
        self.name = name
        # A worker polls and sweeps the queues of its shard (owned); the
        # others it claims from only when their doorbell rings here.
        self.owned = owned
        self.next_poll = 0.0 if owned else NEVER
        # The doorbell rings for it: True; False: the reverse path
        # subscribes it before its next claim; None: left to the start-up
        # pass (bridge/flows/recovery.py).
        self.subscribed = False
        self.rings = 0            # rings so far
        self.unclaimed = 0        # rings no claim has answered yet
        self.rechecked = False    # the look RECHECK after a missed ring
        self.swept = False        # this look is the safety sweep's
        self.idle = MIN_POLL
        self.rate = rate
        self.tokens = rate
        self.refilled = time.monotonic()
        # The bridge's own queue whose ring proves the doorbell works: its
        # messages are deleted, never forwarded.
        self.canary = canary

    def allowance(self, limit, now):
        """How many messages may be claimed now (rate limit)."""
        if not self.rate:
            return limit
        self.tokens = min(self.rate, self.tokens
                          + (now - self.refilled) * self.rate)
        self.refilled = now
        return min(limit, int(self.tokens))

    def __repr__(self):
        return '%s/%s' % (self.tenant, self.name)


class Schedule:
    def __init__(self, queues, poll_interval, doorbell=False,
                 sweep_interval=1.0, answer_due_window=0.0):
        self.queues = list(queues)
        self.owned = [q for q in self.queues if q.owned]
        self.by_key = {(q.tenant, q.name): q for q in self.queues}
        self.poll_interval = poll_interval
        self.doorbell = doorbell
        self.sweep_interval = sweep_interval
        self.next_sweep = 0.0
        self._sweep_at = 0
        self._lock = threading.Lock()
        self.wake = threading.Event()
        self.answers = answers_due.Due(answer_due_window)

    def tenants(self):
        with self._lock:
            return {q.tenant for q in self.queues}

    def add(self, queue):
        """A tenant found while running: look at its queue now."""
        with self._lock:
            self.queues.append(queue)
            if queue.owned:
                self.owned.append(queue)
            self.by_key[(queue.tenant, queue.name)] = queue
        self.wake.set()

    def due(self, now):
        """The queues to claim from in this round."""
        with self._lock:
            if self.doorbell and now >= self.next_sweep and self.owned:
                queue = self.owned[self._sweep_at % len(self.owned)]
                self._sweep_at += 1
                if queue.next_poll > now:
                    queue.next_poll = now
                    queue.swept = True
                self.next_sweep = now + self.sweep_interval
            return [q for q in self.queues if q.next_poll <= now]

    def next_wake(self, now):
        """Seconds until something is due (a ring wakes earlier)."""
        with self._lock:
            wake = min((q.next_poll for q in self.queues), default=NEVER)
            if self.doorbell:
                wake = min(wake, self.next_sweep)
        return max(0.0, min(wake - now, 1.0))

    def got(self, queue, count, now, limit=None, rings=None, started=None):
        """``count`` messages were claimed from ``queue`` (by a claim sent
        at ``started``).

        ``limit`` is how many the claim asked for and ``rings`` is
        ``queue.rings`` from before it: a short claim with no ring since
        and none unanswered leaves the queue to the doorbell.
        """
        with self._lock:
            due = queue in self.answers and self.answers.found(
                queue, count, now, started)
            if queue.rate:
                queue.tokens -= count
            queue.idle = MIN_POLL
            queue.unclaimed = max(0, queue.unclaimed - count)
            queue.rechecked = False
            queue.next_poll = now
            if (self.doorbell and limit is not None and count < limit
                    and queue.rings == rings and not queue.unclaimed):
                queue.next_poll = NEVER
            elif queue.rate and queue.tokens < 1:
                queue.next_poll = now + (1 - queue.tokens) / queue.rate
            if due:
                queue.next_poll = min(queue.next_poll,
                                      self.answers.next_look(queue, now))

    def empty(self, queue, now, rings=None, started=None):
        """A claim (sent at ``started``) found ``queue`` empty.

        ``rings`` is ``queue.rings`` from before that claim: a ring since
        then may be for a message the claim just missed, so look again.
        """
        with self._lock:
            self._empty(queue, now, rings)
            if queue in self.answers:
                look = self.answers.next_look(queue, now, started)
                if look is not None:
                    queue.next_poll = min(queue.next_poll, look)

    def _empty(self, queue, now, rings):
        """The doorbell's or the poll's next look after an empty claim."""
        if rings is not None and queue.rings != rings:
            queue.next_poll = now
            return
        if self.doorbell or not queue.owned:
            if queue.unclaimed and not queue.rechecked:
                queue.rechecked = True
                queue.next_poll = now + RECHECK
                return
            queue.unclaimed = 0
            queue.rechecked = False
            queue.next_poll = NEVER
            return
        queue.next_poll = now + min(queue.idle, self.poll_interval)
        queue.idle = min(queue.idle * 2, self.poll_interval)

    def retry_in(self, queue, delay, now):
        with self._lock:
            queue.next_poll = now + delay

    def answer_due(self, tenant, name, now=None):
        """An answer to a call is due in (tenant, queue); False if that
        queue is not this worker's to poll or hints are off."""
        now = time.monotonic() if now is None else now
        with self._lock:
            queue = self.by_key.get((tenant, name))
            if queue is None or not queue.owned:
                return False
            look = self.answers.hinted(queue, now)
            if look is None:
                return False
            queue.next_poll = min(queue.next_poll, look)
        self.wake.set()
        return True

    def look_at(self, queue, when):
        """Claim from ``queue`` at ``when`` at the latest (a message may
        come back then without a ring: a claim expires)."""
        with self._lock:
            if when < queue.next_poll:
                queue.next_poll = when
        self.wake.set()

    def looked(self, queue, free, claimed, now, claim_ttl):
        """A look without claiming found ``free`` messages ready and
        ``claimed`` ones under a claim: claim now if there are free ones;
        if only claimed ones, look again once their claim can have
        expired (its holder may be gone: no ring will say so)."""
        if free:
            self.look_at(queue, now)
        elif claimed:
            self.look_at(queue, now + claim_ttl + RECHECK)

    def ring(self, tenant, name):
        """The doorbell rang for (tenant, queue); False if not ours."""
        with self._lock:
            queue = self.by_key.get((tenant, name))
            if queue is None:
                return False
            queue.rings += 1
            queue.unclaimed += 1
            queue.next_poll = 0.0
        self.wake.set()
        return True
