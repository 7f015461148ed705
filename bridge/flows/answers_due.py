"""Answers due: the forward flow tells the reverse flow when to look.

A controller's ``call()`` to a guest is answered into the reply queue its
token names (bridge/rpc/relay.py), usually tens of milliseconds after the
forward flow posted the call.  Waiting for that queue's doorbell (Zaqar's
webhook, ~10 ms after the answer is posted) or its next poll would put
that wait on every call's critical path, so the forward worker that
posted a call tells the worker draining the reply queue that an answer is
due, and that worker looks at the queue at the moment answers usually
come (:class:`Due`), then a little later, and so on for a short window;
after it, the doorbell or the normal poll takes over.

Hints are datagrams on Unix sockets in a directory private to the daemon
(mode 0700, made by the manager before any worker starts; its path is in
``$AMQP_ZAQAR_BRIDGE_HINTS``): each reverse worker binds one socket there;
a forward worker sends each hint to every socket in it, and a worker that
does not drain that tenant's queue ignores the hint.  A hint is only a
hint: lost, late or ignored, it costs latency, never a message.
"""

import atexit
import contextlib
import glob
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time

from oslo_log import log

LOG = log.getLogger(__name__)

ENV = 'AMQP_ZAQAR_BRIDGE_HINTS'
# Seconds between two looks once the usual moment has passed: the first
# gap, growing by STEP_GROWTH each time, never more than STEP_MAX.
STEP_FIRST = 0.002
STEP_GROWTH = 1.5
STEP_MAX = 0.25
# What the first answer of a worker is expected to take (then learnt).
EXPECTED_FIRST = 0.008
# Weight of the newest delay in the learnt one (exponential average).
LEARNING = 0.2
# Seconds a forward worker keeps its list of reverse workers' sockets.
REFRESH = 1.0


class Due:
    """When to look at queues that have answers due, learnt per worker.

    Pure timing; bridge/flows/schedule.py asks it.  A hint makes the queue
    due at the *expected* moment (the learnt delay from a hint to the
    answer, minus a step); each look that finds nothing sets the next one
    a growing step later, until ``window`` seconds (``[rpc]
    answer_due_window``) after the last hint; each look that finds
    answers counts them off.  A window of 0 ignores hints.

    A look only shows that the answer came before it started, so what is
    learnt is when the answer came, not when it was found: between the
    start of the last empty look and the start of the look that found it
    (their middle); when the first look finds it, it may have come long
    before: a step before that look.  (Learning when answers were found
    would never learn that they come sooner: a late look always finds
    them, later still.)
    """

    def __init__(self, window):
        self.window = window
        self.expected = EXPECTED_FIRST
        # queue -> [answers due, hinted at, until, step, start of the last
        # empty look since then or None]
        self._due = {}

    def __contains__(self, queue):
        return queue in self._due

    def hinted(self, queue, now):
        """An answer is due in ``queue``; the time to look at it, or None
        when hints are off."""
        if not self.window:
            return None
        until = now + self.window
        state = self._due.get(queue)
        if state is None:
            self._due[queue] = state = [0, now, until, STEP_FIRST, None]
        state[0] += 1
        state[2] = max(state[2], until)
        return now + max(0.0, self.expected - STEP_FIRST)

    def found(self, queue, count, now, started=None):
        """A look that started at ``started`` (default: ``now``) found
        ``count`` messages: True while answers stay due."""
        state = self._due.get(queue)
        if state is None:
            return False
        started = now if started is None else started
        if count:
            if state[4] is None:   # the first look found it
                came = started - STEP_FIRST
            else:
                came = (state[4] + started) / 2
            delay = max(0.0, came - state[1])
            self.expected += LEARNING * (delay - self.expected)
            state[0] -= count
            state[1] = now
            state[3] = STEP_FIRST
            state[4] = None
        elif started >= state[1]:
            state[4] = started
        if state[0] <= 0 or now >= state[2]:
            del self._due[queue]
            return False
        return True

    def next_look(self, queue, now, started=None):
        """After an empty look (that started at ``started``): when to look
        again, or None (no answer is due there any more; the doorbell or
        the poll decides)."""
        if not self.found(queue, 0, now, started):
            return None
        state = self._due[queue]
        step = state[3]
        state[3] = min(step * STEP_GROWTH, STEP_MAX)
        return min(now + step, state[2])


# -- the hint channel between the daemon's workers

def setup():
    """Make the hints directory; call in the master, before workers.

    Removed when the master exits.
    """
    path = tempfile.mkdtemp(prefix='azb-hints-')   # mode 0700
    master = os.getpid()
    os.environ[ENV] = path

    def cleanup():
        if os.getpid() == master:   # not in a forked child
            shutil.rmtree(path, ignore_errors=True)
    atexit.register(cleanup)
    return path


class Sender:
    """Sends hints from a forward worker to every reverse worker
    (none when not ``enabled``)."""

    def __init__(self, enabled=True, path=None, clock=time.monotonic):
        self.path = path if path is not None else os.environ.get(ENV)
        if not enabled:
            self.path = None
        self._clock = clock
        self._sock = None
        self._peers = []
        self._listed_at = None

    def _targets(self):
        now = self._clock()
        if self._listed_at is None or now - self._listed_at >= REFRESH:
            self._peers = glob.glob(os.path.join(self.path, '*.sock'))
            self._listed_at = now
        return self._peers

    def answer_due(self, tenant, queue):
        """An answer to a call is due in ``tenant``'s ``queue``."""
        if not self.path:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        data = json.dumps([tenant, queue]).encode('utf-8')
        for peer in self._targets():
            try:
                self._sock.sendto(data, peer)
            except OSError:   # a worker gone, or its socket full
                pass

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Listener:
    """A reverse worker's socket: calls ``hint(tenant, queue)``.

    ``name`` (the route's) is logged and, cut to a safe file name, names
    the socket with the worker's pid.
    """

    def __init__(self, name, hint, path=None):
        self.path = path if path is not None else os.environ.get(ENV)
        self.hint = hint
        self.name = name
        self._sock = None
        self._thread = None
        self._stop = threading.Event()

    def start(self):
        if not self.path:
            return self
        address = os.path.join(self.path, '%s-%d.sock' % (
            re.sub('[^A-Za-z0-9_-]', '_', self.name)[:32], os.getpid()))
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(address)
        except OSError as exc:
            LOG.warning('Route %s: no answer hints (%s); answers are found '
                        'by the doorbell or the poll', self.name, exc)
            self._sock.close()
            self._sock = None
            return self
        self._sock.settimeout(REFRESH)
        self.address = address
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='answer-hints')
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                tenant, queue = json.loads(data)
            except (ValueError, TypeError):
                continue
            if self.hint(str(tenant), str(queue)):
                LOG.debug('Route %s: an answer is due in tenant %s queue %s',
                          self.name, tenant, queue)

    def stop(self):
        self._stop.set()
        if self._sock is not None:
            if self._thread is not None:
                self._thread.join()
            self._sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.address)
            self._sock = None
