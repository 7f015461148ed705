"""Capped exponential backoff that can be interrupted."""

import random
import time


class Backoff:
    """Delays ``initial``, twice that... up to ``maximum``, with jitter.

    ``hold`` (seconds): after :meth:`reset`, :meth:`next` stays at
    ``initial`` that long before doubling again (a poller that just found
    work expects more soon).  ``jitter`` spreads each delay by that
    fraction either way, so competing clients don't move in lockstep.
    """

    def __init__(self, initial=0.5, maximum=30.0, hold=0.0, jitter=0.1,
                 clock=time.monotonic):
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.hold = hold
        self.jitter = jitter
        self.attempt = 0
        self._clock = clock
        self._hold_until = None

    def next(self):
        if self._hold_until is not None:
            if self._clock() < self._hold_until:
                return self._spread(self.initial)
            self._hold_until = None
        delay = min(self.maximum, self.initial * (2 ** self.attempt))
        if delay < self.maximum:
            self.attempt += 1
        return self._spread(delay)

    def reset(self):
        self.attempt = 0
        if self.hold:
            self._hold_until = self._clock() + self.hold

    def _spread(self, delay):
        if not self.jitter:
            return delay
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)


class Outage:
    """Tracks one side being unreachable: backoff, and one log line each way.

    The first failure logs a warning, later ones only at debug level, and
    the recovery logs how long it lasted: an outage never floods the log.
    ``report``, when given, is called with False on each failure and True on
    each success (metrics of the connection).
    """

    def __init__(self, log, route, side, maximum=30.0, report=None):
        self.log = log
        self.route = route
        self.side = side
        self.backoff = Backoff(maximum=maximum)
        self.since = None
        self.report = report

    @property
    def down(self):
        return self.since is not None

    def failed(self, exc, waiting=''):
        """Record a failure; return how long to wait before the next try."""
        if self.report is not None:
            self.report(False)
        delay = self.backoff.next()
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning('Route %s: %s unavailable (%s)%s; retrying with '
                             'backoff up to %.0fs', self.route, self.side,
                             error_text(exc), waiting, self.backoff.maximum)
        else:
            self.log.debug('Route %s: %s still unavailable (%s), next try in '
                           '%.1fs', self.route, self.side, error_text(exc),
                           delay)
        return delay

    def ok(self):
        if self.report is not None:
            self.report(True)
        if self.since is not None:
            self.log.info('Route %s: %s is back after %.1fs', self.route,
                          self.side, time.monotonic() - self.since)
            self.since = None
        self.backoff.reset()


def error_text(exc):
    """One short line describing an exception, for logs."""
    text = str(exc).split('\n')[0] or exc.__class__.__name__
    if len(text) > 200:
        text = text[:200] + '...'
    return '%s: %s' % (exc.__class__.__name__, text)
