"""systemd notifications from the master: READY=1, WATCHDOG=1, STATUS=.

cotyledon's ``ServiceManager.run()`` says ``READY=1`` as soon as it starts,
when it finds ``NOTIFY_SOCKET``.  The bridge is ready only once every route
is connected to both sides, so :class:`Notifier` takes the notification
socket (and the watchdog settings) out of the environment before the
manager runs (nor do the workers inherit them), and a thread of the master
watches the health (bridge.health) to send:

* ``READY=1`` once healthy, the first time;
* ``WATCHDOG=1`` every half ``WATCHDOG_USEC``, only while every route has
  all its workers running: a daemon whose workers stay missing longer
  than ``WatchdogSec`` is restarted.  An unreachable RabbitMQ or Zaqar is
  not a reason: the workers retry by themselves and nothing is lost
  meanwhile, and restarting every controller's bridge would not bring the
  server back (STATUS= and ``/healthz`` say it is down);
* ``STATUS=...`` when the status line changes;
* ``RELOADING=1`` (with ``MONOTONIC_USEC``) on SIGHUP, ``READY=1`` once the
  new configuration is applied;
* ``STOPPING=1`` on SIGTERM.

Without ``NOTIFY_SOCKET`` (not run by systemd) it does nothing.
"""

import os
import threading
import time

from oslo_log import log
import sdnotify

from bridge.daemon import health as bridge_health

LOG = log.getLogger(__name__)

TICK = 1.0  # seconds between health checks


def watchdog_interval(environ=None):
    """Seconds between WATCHDOG=1 (half WATCHDOG_USEC), or None."""
    environ = os.environ if environ is None else environ
    usec = environ.get('WATCHDOG_USEC')
    pid = environ.get('WATCHDOG_PID')
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process
    try:
        usec = int(usec)
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Notifier:
    """Tells systemd how the daemon is doing; call in the master."""

    def __init__(self, path, check=bridge_health.check):
        self.path = path
        self.check = check
        self.enabled = bool(os.environ.get('NOTIFY_SOCKET'))
        self.watchdog = watchdog_interval() if self.enabled else None
        self.systemd = sdnotify.SystemdNotifier() if self.enabled else None
        # Nobody else talks to systemd: not cotyledon's run() (it would say
        # READY=1 at once), not the workers.
        for name in ('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'):
            os.environ.pop(name, None)
        # Check often enough that a ping is never late by more than a tick.
        self.interval = TICK if self.watchdog is None else min(
            TICK, self.watchdog / 4)
        self.ready = False
        self.status = None
        self.last_ping = None
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._run,
                                        name='systemd-notify', daemon=True)
        self._thread.start()

    def stop(self):
        """SIGTERM: the daemon is stopping."""
        self._stop.set()
        self.send('STOPPING=1')

    def reloading(self):
        """SIGHUP: the configuration is being applied."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send('RELOADING=1\nMONOTONIC_USEC=%d' % usec)

    def reloaded(self):
        self.send('READY=1')

    def send(self, text):
        if self.systemd is not None:
            self.systemd.notify(text)

    def _run(self):
        failing = False
        while not self._stop.is_set():
            try:
                self.tick()
                failing = False
            except Exception:
                # Once per streak: no WATCHDOG=1 meanwhile, systemd acts.
                if not failing:
                    LOG.exception('Cannot check health for systemd')
                failing = True
            self._stop.wait(self.interval)

    def tick(self, now=None):
        """Check the health once; say what changed."""
        now = time.monotonic() if now is None else now
        health = self.check(self.path)
        lines = []
        if health.ok and not self.ready:
            self.ready = True
            lines.append('READY=1')
            LOG.info('Every route is connected to RabbitMQ and Zaqar: '
                     'ready')
        status = health.status()
        if status != self.status:
            self.status = status
            lines.append('STATUS=' + status)
        if health.alive and self.watchdog is not None and (
                self.last_ping is None
                or now - self.last_ping >= self.watchdog - self.interval):
            self.last_ping = now
            lines.append('WATCHDOG=1')
        if lines:
            self.send('\n'.join(lines))
        return health
