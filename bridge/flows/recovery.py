"""Finding the messages whose doorbell ring was lost, without polling.

With a doorbell (bridge/zaqar/doorbell.py) an empty tenant queue is
claimed from only when it rings.  Zaqar rings once per message and gives
up after two retries (1 s and 12 s later), so a ring is lost when:

1. no worker takes it: the route is down or restarting, the doorbell's
   port can't be reached from zaqar-server (network, firewall), or Zaqar's
   notifier can't deliver it (its workers are tied up, a zaqar-server
   without the notification pipeline took the post);
2. zaqar-server stops with rings still queued in its notifier (they are
   in memory only);
3. a claimed message comes back when its claim expires (its worker died
   between claim and delete, or the delete failed): nothing rings then.

Looking at every queue in turn to catch these costs one request per
queue: at 10,000 queues, 33 requests a second to look at each every 5
minutes.  Instead, each worker of the route looks at the queues of its
shard only when a ring can have been lost, and finds out when that is:

* **Start-up pass**: when the worker starts, a small thread pool
  (``startup_concurrency``) makes sure every queue of its shard has the
  bridge's subscription: one create each (Zaqar answers a repeated create
  with the existing subscription), after which the doorbell rings for it.
  Once every create succeeded, the worker records it in its canary
  queue's metadata: a digest of the queues, the URL rung, the secret and
  the subscription's settings (bridge/zaqar/doorbell.py shard_digest),
  and when.  A worker that finds its own record, for the same digest and
  less than half a subscription's ttl old, skips the creates (a restart:
  two requests instead of one per queue).  A subscription lost since
  (Zaqar's store lost it, a tenant deleted it) is then made again by the
  check of the sweep below, within ``recovery_sweep_time``, and that
  queue looked at: such a lost ring is found within the same bound as
  any other.
  Then a recovery sweep (below) checks each subscription's options (one
  request when they are right; a subscription made before proofs existed,
  or under another secret, whose rings are refused until then, gets
  them) and looks at each queue (its stats: one request, no claim): free
  messages are claimed at once; messages under a claim (of a worker that
  died) are looked for again once that claim can have expired
  (``claim_ttl``).  Case 1 while down, and case 3.
* **Canary**: every ``canary_interval`` seconds the worker posts a
  message to a queue of the bridge's own project, subscribed like a
  tenant queue.  Whichever worker its ring reaches claims and deletes it;
  if it is still there ``CANARY_TIMEOUT`` seconds later, the ring was lost
  (case 1 while up: it exercises Zaqar's notifier, the network path and
  the doorbell end to end), and the worker looks at every queue of its
  shard (a *recovery sweep*, spread over ``recovery_sweep_time``
  seconds), again and again until a canary ring comes back, then once
  more for the rings lost before it did.
* **Zaqar outage**: when a request of the worker failed and Zaqar answers
  again, a recovery sweep (case 2, as far as the worker saw it).
* A delete that failed: the queue is looked at again after ``claim_ttl``
  (case 3, bridge/flows/reverse.py).

So a message whose ring was lost reaches AMQP within ``canary_interval +
CANARY_TIMEOUT + recovery_sweep_time`` seconds (200 s with the defaults)
of its post or of its worker's start, whichever is later.  Not covered
by this bound: a tenant deleting the bridge's subscription on its own
queue, and a zaqar-server restart that no request of the worker saw
(between two canaries; it loses only the rings still queued in its
notifier, a few milliseconds' worth when the canary comes back in time).
Those are left to the slow safety sweep (``sweep_interval``, in
bridge/flows/schedule.py), which also subscribes such a queue again.
"""

import concurrent.futures
import re
import threading
import time
import zlib

from oslo_log import log

from bridge import backoff
from bridge.flows import schedule as schedule_mod
from bridge.zaqar import client as zaqar_client
from bridge.zaqar import doorbell

LOG = log.getLogger(__name__)

# Seconds a canary's ring may take: Zaqar retries a failed ring 1 s and
# 12 s after the first try.
CANARY_TIMEOUT = 20.0
CANARY_TTL = 60   # Zaqar's shortest message ttl
# A recovery sweep looks at this many queues a second at least (so a
# small shard is done at once), at most its shard in recovery_sweep_time.
MIN_LOOKS_PER_SECOND = 20.0
STARTED = 'the worker started'


def canary_queue(route, worker):
    """The name of the canary queue of ``route``'s worker ``worker``."""
    name = re.sub(r'[^A-Za-z0-9_-]', '_', route)
    if len(name) > 30:
        name = '%s%08x' % (name[:22], zlib.crc32(route.encode('utf-8')))
    return 'bridge-canary-%s-%d' % (name, worker)


def canaries(route, workers, project):
    """The canary queues of every worker of ``route``: a ring of any of
    them may reach any worker, which claims (and deletes) its message."""
    return [schedule_mod.TenantQueue(project, project,
                                     canary_queue(route, w), owned=False,
                                     canary=True)
            for w in range(workers)]


def prepare(route, worker_id, queues, project):
    """The queues a doorbell worker schedules, and its own canary queue.

    Its own tenant queues wait for the start-up pass (which subscribes
    them and looks at them first); every worker's canary queue is added
    (``project``: the bridge's own), so any of their rings may reach it.
    """
    canary = None
    for queue in queues:
        if queue.owned:
            queue.subscribed = None
            queue.next_poll = schedule_mod.NEVER
    if route.canary_interval:
        every = canaries(route.name, route.workers, project)
        canary = every[worker_id]
        queues = queues + every
    return queues, canary


class Recovery:
    """The start-up pass, the canary and the recovery sweeps of one
    worker (see the module's docstring); a thread of its own."""

    def __init__(self, route, clients, schedule, doorbell, canary,
                 trust_recheck_interval):
        self.route = route
        self.clients = clients
        self.schedule = schedule
        self.doorbell = doorbell
        self.canary = canary            # this worker's canary TenantQueue
        self.trust_recheck_interval = trust_recheck_interval
        self.zaqar = backoff.Outage(LOG, route.name, 'Zaqar (recovery)',
                                    route.retry_max_interval)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outage_lock = threading.Lock()   # the start-up pool shares it
        self._reasons = []
        self._wake = threading.Event()
        self.started_at = None
        self.pass_done_at = None       # monotonic time the start-up pass ended
        self.pass_requests = 0
        self.canary_lost = False
        self._pass_failed = False      # a subscription of the pass failed
        self.sweeps = 0
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name='recovery')

    def start(self):
        self.started_at = time.monotonic()
        self.thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._wake.set()

    def join(self, timeout=None):
        self.thread.join(timeout)

    def request(self, reason):
        """Sweep every queue of the shard soon (a ring can have been
        lost for ``reason``)."""
        with self._lock:
            if reason not in self._reasons:
                self._reasons.append(reason)
        self._wake.set()

    # -- for the reverse path

    def subscribe(self, queue, client):
        """Make sure the doorbell rings for ``queue`` before the reverse
        path claims from it: once per worker, for a queue the start-up
        pass did not subscribe (found later, or whose trust was gone).
        Raises AccessError (not subscribed: tried again with the next
        claim) and TRANSIENT_ERRORS."""
        if queue.subscribed is not False:
            return
        try:
            self.doorbell.subscribe(client, queue.name, queue.tenant)
        except zaqar_client.AccessError:
            raise
        except zaqar_client.PERMANENT_ERRORS as exc:
            # Polling still works: the sweep finds its messages, slowly.
            LOG.error('Route %s: Zaqar refuses the doorbell subscription of '
                      'tenant %s queue %s (%s); only the safety sweep will '
                      'look at it', self.route.name, queue.tenant,
                      queue.name, backoff.error_text(exc))
        queue.subscribed = True

    def canaries_rang(self, queue, messages, limit, rings):
        """A canary's ring came and the reverse path claimed ``messages``
        from canary queue ``queue``: they have done their job.  Tells the
        schedule; returns the messages to delete (all of them)."""
        now = time.monotonic()
        if not messages:
            self.schedule.empty(queue, now, rings)
            return []
        self.schedule.got(queue, len(messages), now, limit, rings)
        for message in messages:
            if isinstance(message.body, dict) and \
                    'bridge_canary' not in message.body:
                LOG.warning('Route %s: deleting message %s from the '
                            'doorbell\'s canary queue %s: not a canary',
                            self.route.name, message.id, queue.name)
        return messages

    # -- one queue

    def _look(self, queue, subscribe=None):
        """Subscribe ``queue`` (``subscribe``: 'create', only that; or
        'check', making sure of its options too) and look at it without
        claiming (unless only creating); tell the schedule what was seen.
        Returns the requests made; raises TRANSIENT_ERRORS."""
        requests = 0
        client = self.clients.for_project(queue.project)
        try:
            if subscribe:
                done = self.doorbell.subscribe(client, queue.name,
                                               queue.tenant,
                                               check=subscribe == 'check')
                requests += {'kept': 1, 'created': 1,
                             'listed and created': 2}.get(done, 3)
                queue.subscribed = True
                if subscribe == 'create':
                    return requests
            requests += 1
            stats = client.queue(queue.name).stats['messages']
        except zaqar_client.AccessError:
            # This tenant's trust is gone: the reverse path subscribes and
            # claims once the trust is back.
            self._pass_failed = True
            queue.subscribed = False
            self.schedule.retry_in(queue, self.trust_recheck_interval,
                                   time.monotonic())
            return requests + 1
        except zaqar_client.PERMANENT_ERRORS as exc:
            LOG.error('Route %s: Zaqar refuses the doorbell subscription of '
                      'tenant %s queue %s (%s); only the sweeps will look '
                      'at it', self.route.name, queue.tenant, queue.name,
                      backoff.error_text(exc))
            self._pass_failed = True
            queue.subscribed = True
            self.schedule.look_at(queue, time.monotonic())
            return requests + 1
        except zaqar_client.UnavailableError:
            # Zaqar 23's Redis store fails the stats of a queue holding
            # expired messages not yet collected: a claim tells.
            if queue.subscribed is not True:
                self._pass_failed = True
            self.schedule.look_at(queue, time.monotonic())
            return requests
        self.schedule.looked(queue, stats.get('free', 0),
                             stats.get('claimed', 0), time.monotonic(),
                             self.route.claim_ttl)
        return requests

    def _look_retrying(self, queue, subscribe=None):
        while not self._stop.is_set():
            try:
                made = self._look(queue, subscribe)
            except zaqar_client.TRANSIENT_ERRORS as exc:
                with self._outage_lock:
                    delay = self.zaqar.failed(exc)
                self._stop.wait(delay)
                continue
            except Exception:
                # Left to the reverse path, which subscribes and claims.
                LOG.exception('Route %s: cannot look at tenant %s queue %s',
                              self.route.name, queue.tenant, queue.name)
                self._pass_failed = True
                queue.subscribed = False
                self.schedule.look_at(queue, time.monotonic())
                return 1
            self._zaqar_ok()
            return made
        return 0

    def _zaqar_ok(self):
        with self._outage_lock:
            if not self.zaqar.down:
                return
            self.zaqar.ok()
        # Rings queued in zaqar-server when it went away are lost.
        self.request('Zaqar was unreachable')

    # -- the thread

    def _run(self):
        try:
            self._startup_pass()
            next_canary = time.monotonic()
            while not self._stop.is_set():
                with self._lock:
                    reasons, self._reasons = self._reasons, []
                    self._wake.clear()
                if reasons:
                    self._sweep(reasons)
                    continue
                if self.route.canary_interval and \
                        time.monotonic() >= next_canary:
                    self._canary_cycle()
                    next_canary = time.monotonic() + (
                        0 if self.canary_lost
                        else self.route.canary_interval - CANARY_TIMEOUT)
                    continue
                wait = self.route.canary_interval and max(
                    0.0, next_canary - time.monotonic())
                self._wake.wait(wait or None)
        except Exception:
            LOG.exception('Route %s: the recovery thread failed; lost '
                          'doorbell rings are now found by the safety '
                          'sweep only', self.route.name)

    def _startup_pass(self):
        """Subscribe every queue of the shard, a few at a time, unless
        this worker's record says it did so before; then a recovery sweep
        checks and looks at each."""
        owned = list(self.schedule.owned)
        digest = None
        made = 0
        if self.canary is not None and self.route.canary_interval:
            self._subscribe_canary()
            digest = self.doorbell.digest((q.project, q.name) for q in owned)
            made = 2
        since = self._subscribed_before(digest)
        if since is not None:
            for queue in owned:
                if queue.subscribed is None:
                    queue.subscribed = True
        else:
            started = time.time()
            self._pass_failed = False
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.route.startup_concurrency,
                    thread_name_prefix='startup') as pool:
                made += sum(pool.map(
                    lambda q: self._look_retrying(q, 'create'), owned))
            if self._stop.is_set():
                return
            if digest is not None and not self._pass_failed:
                made += self._record_subscribed(digest, started)
        self.pass_requests = made
        self.pass_done_at = time.monotonic()
        LOG.info('Route %s: start-up pass done in %.1fs: the doorbell rings '
                 'for the %d tenant queue(s) of this worker (%d requests%s)',
                 self.route.name, self.pass_done_at - self.started_at,
                 len(owned), made,
                 '' if since is None else
                 '; subscribed by this worker %.0fs ago, as its canary '
                 'queue records: the first recovery sweep checks each'
                 % since)
        self.request(STARTED)

    def _subscribed_before(self, digest):
        """Seconds since this worker made every subscription of
        ``digest``, as its canary queue's metadata records (the same
        queues, URL, secret and settings); None if it did not, or that
        is more than half a subscription's ttl ago, or it can't tell."""
        if digest is None:
            return None
        client = self.clients.for_project(self.canary.project)
        try:
            found = doorbell.recorded(client, self.canary.name)
        except zaqar_client.TRANSIENT_ERRORS + \
                zaqar_client.PERMANENT_ERRORS as exc:
            LOG.warning('Route %s: cannot read the doorbell\'s canary queue '
                        '%s (%s): subscribing every queue',
                        self.route.name, self.canary.name,
                        backoff.error_text(exc))
            return None
        if found is None or found['digest'] != digest:
            return None
        age = time.time() - found['at']
        if not 0 <= age < doorbell.SUBSCRIPTION_TTL / 2:
            return None
        return age

    def _record_subscribed(self, digest, at):
        """Note in the canary queue that every subscription of ``digest``
        was made (at ``at``); the requests that took."""
        client = self.clients.for_project(self.canary.project)
        try:
            doorbell.record(client, self.canary.name, digest, at)
        except zaqar_client.TRANSIENT_ERRORS + \
                zaqar_client.PERMANENT_ERRORS as exc:
            LOG.warning('Route %s: cannot note in the doorbell\'s canary '
                        'queue %s that every queue is subscribed (%s): the '
                        'next start subscribes them again', self.route.name,
                        self.canary.name, backoff.error_text(exc))
        return 1

    def _sweep(self, reasons):
        """Look at every queue of the shard, spread over
        ``recovery_sweep_time`` seconds; after a start, check each
        subscription's options first."""
        owned = list(self.schedule.owned)
        if not owned:
            return
        self.sweeps += 1
        log = LOG.info if reasons == [STARTED] else LOG.warning
        log('Route %s: looking at the %d tenant queue(s) of this worker '
            'within %.0fs: doorbell rings can have been lost (%s)',
            self.route.name, len(owned), self.route.recovery_sweep_time,
            '; '.join(reasons))
        check = 'check' if STARTED in reasons else None
        started = time.monotonic()
        step = min(self.route.recovery_sweep_time / len(owned),
                   1.0 / MIN_LOOKS_PER_SECOND)
        made = 0
        for k, queue in enumerate(owned):
            delay = started + k * step - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if self._stop.is_set():
                return
            made += self._look_retrying(queue, check)
        LOG.info('Route %s: recovery sweep of %d queue(s) done in %.1fs '
                 '(%d requests)', self.route.name, len(owned),
                 time.monotonic() - started, made)

    # -- the canary

    def _subscribe_canary(self):
        client = self.clients.for_project(self.canary.project)
        try:
            self.doorbell.subscribe(client, self.canary.name,
                                    self.canary.tenant)
        except zaqar_client.TRANSIENT_ERRORS + \
                zaqar_client.PERMANENT_ERRORS as exc:
            LOG.warning('Route %s: cannot subscribe the doorbell\'s canary '
                        'queue %s (%s)', self.route.name, self.canary.name,
                        backoff.error_text(exc))

    def _canary_cycle(self):
        """Post a canary, wait for its ring to take it; sweep if not."""
        queue = self.canary
        client = self.clients.for_project(queue.project)
        try:
            client.queue(queue.name).post([{'ttl': CANARY_TTL, 'body': {
                'bridge_canary': queue.name, 'sent': time.time()}}])
        except zaqar_client.TRANSIENT_ERRORS as exc:
            self._stop.wait(self.zaqar.failed(exc))
            return
        if self._stop.wait(CANARY_TIMEOUT):
            return
        try:
            claim = client.queue(queue.name).claim(ttl=60, grace=60,
                                                   limit=20)
            left = list(claim)
            for message in left:
                message.delete()
        except zaqar_client.TRANSIENT_ERRORS as exc:
            self._stop.wait(self.zaqar.failed(exc))
            return
        self._zaqar_ok()
        if left:
            if not self.canary_lost:
                LOG.warning('Route %s: the doorbell\'s canary ring did not '
                            'come within %.0fs: Zaqar\'s notifications do '
                            'not reach %s; sweeping every tenant queue of '
                            'this worker until one does', self.route.name,
                            CANARY_TIMEOUT, self.route.doorbell_url)
            self.canary_lost = True
            self._subscribe_canary()
            self.request('the canary ring was lost')
        elif self.canary_lost:
            LOG.info('Route %s: the doorbell\'s canary rings again',
                     self.route.name)
            self.canary_lost = False
            self.request('rings were lost until the canary came back')
