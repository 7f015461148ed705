"""systemd notifications: READY=1 once healthy, WATCHDOG=1 while alive."""

import os
import socket

import cotyledon
import pytest

from bridge.daemon import health
from bridge.daemon import notify

HEALTHY = health.Health(routes=1, totals={'forwarded': 5})
DOWN = health.Health(routes=1, down=['route r1: zaqar down'],
                     totals={'forwarded': 5})
MISSING = health.Health(routes=1, problems=['route r1: 1/2 workers running'])


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    """A bound notification socket, announced as systemd would."""
    path = str(tmp_path / 'notify')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    monkeypatch.setenv('NOTIFY_SOCKET', path)
    monkeypatch.setenv('WATCHDOG_USEC', '2000000')
    monkeypatch.setenv('WATCHDOG_PID', str(os.getpid()))

    def received():
        got = []
        sock.settimeout(0.05)
        try:
            while True:
                got.append(sock.recv(4096).decode())
        except socket.timeout:
            return got
    yield received
    sock.close()


def notifier(states):
    states = list(states)
    return notify.Notifier('unused', check=lambda path: states.pop(0))


def test_ready_only_once_healthy_and_watchdog_while_alive(systemd):
    n = notifier([DOWN, DOWN, HEALTHY, HEALTHY, HEALTHY, DOWN, MISSING,
                  MISSING, HEALTHY])
    assert n.watchdog == 1.0 and n.interval == 0.25
    n.tick(now=0.0)
    # Not READY=1 before both sides answer, but the workers are there.
    assert systemd() == ['STATUS=route r1: zaqar down; forwarded 5 msgs, '
                         'dead-lettered 0\nWATCHDOG=1']
    n.tick(now=0.5)
    assert systemd() == []  # nothing new, the next ping is not due
    n.tick(now=2.0)
    assert systemd() == ['READY=1\nSTATUS=1 route, forwarded 5 msgs, '
                         'dead-lettered 0\nWATCHDOG=1']
    n.tick(now=2.5)
    assert systemd() == []  # the next ping is not due
    n.tick(now=2.8)
    assert systemd() == ['WATCHDOG=1']
    n.tick(now=4.0)
    # A side down: said, but the workers retry by themselves.
    assert systemd() == ['STATUS=route r1: zaqar down; forwarded 5 msgs, '
                         'dead-lettered 0\nWATCHDOG=1']
    n.tick(now=5.0)
    assert systemd() == ['STATUS=route r1: 1/2 workers running; forwarded '
                         '0 msgs, dead-lettered 0']
    n.tick(now=6.0)
    assert systemd() == []  # no WATCHDOG=1 while workers are missing
    n.tick(now=7.0)
    assert systemd() == ['STATUS=1 route, forwarded 5 msgs, '
                         'dead-lettered 0\nWATCHDOG=1']  # READY=1 once
    n.stop()
    assert systemd() == ['STOPPING=1']


def test_reload_is_announced(systemd):
    n = notifier([])
    n.reloading()
    (text,) = systemd()
    first, second = text.split('\n')
    assert first == 'RELOADING=1' and second.startswith('MONOTONIC_USEC=')
    assert int(second.split('=')[1]) > 0
    n.reloaded()
    assert systemd() == ['READY=1']


def test_takes_the_socket_from_cotyledon_and_the_workers(systemd):
    notifier([])
    for name in ('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'):
        assert name not in os.environ
    # What ServiceManager.run() does first: now nothing.
    cotyledon.ServiceManager._systemd_notify_once()
    assert systemd() == []


def test_thread_sends_ready(systemd):
    n = notifier([HEALTHY] * 100)
    n.start()
    try:
        first = None
        for _ in range(40):
            first = systemd()
            if first:
                break
        assert first and first[0].startswith('READY=1\n')
    finally:
        n.stop()


def test_without_systemd_nothing_happens(monkeypatch):
    monkeypatch.delenv('NOTIFY_SOCKET', raising=False)
    n = notifier([])
    assert not n.enabled
    n.start()
    n.stop()


@pytest.mark.parametrize('environ, expected', [
    ({}, None),
    ({'WATCHDOG_USEC': '30000000'}, 15.0),
    ({'WATCHDOG_USEC': '30000000', 'WATCHDOG_PID': str(os.getpid())}, 15.0),
    ({'WATCHDOG_USEC': '30000000', 'WATCHDOG_PID': '1'}, None),
    ({'WATCHDOG_USEC': 'x'}, None),
    ({'WATCHDOG_USEC': '0'}, None),
])
def test_watchdog_interval(environ, expected):
    assert notify.watchdog_interval(environ) == expected
