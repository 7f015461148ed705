"""SIGTERM as README promises it: claims given back, nothing acked unstored.

README (Operating it, SIGTERM): "a forward worker posts what it holds once
more and acknowledges what Zaqar took (the rest is requeued by RabbitMQ),
a reverse worker releases its current claim. The daemon exits within
graceful_shutdown_timeout."
"""

import signal

import kombu
import pytest

from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


@pytest.fixture
def proxy(zaqar):
    p = bridgeutil.HttpProxy(zaqar.url)
    yield p
    p.close()


def test_sigterm_releases_the_reverse_claim(tmp_path, rabbit, zaqar, proxy,
                                            names, conductor):
    # claim_ttl 600: a claim that only expired would not be back for
    # 10 minutes, far beyond every wait below.
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, proxy, [
            ('conductor', bridgeutil.conductor_route(
                names.exchange, names.conductor, [names.tenant_a],
                claim_limit=3, claim_ttl=600, poll_interval=0.2))])
    queue = zaqar.client(names.tenant_a).queue(names.conductor)
    # Catch the worker after its claim of all three, publishing the first
    # and deleting it from Zaqar.
    proxy.hold(lambda method, path: method == 'DELETE'
               and '/messages/' in path)
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)
    try:
        queue.post([bridgeutil.heartbeat(n) for n in (1, 2, 3)])
        bridgeutil.wait_until(lambda: proxy.held,
                              what='the worker deleting its first message')
        # The claim exists: three messages claimed, none for anyone else.
        assert queue.stats['messages']['claimed'] == 3
        assert list(queue.claim(ttl=60, grace=60, limit=3)) == []
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.wait_for_log(lambda t: 'graceful exiting of service reverse'
                            in t, what='the worker told to stop')
        proxy.release()
        assert daemon.proc.wait(30) == 0
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
    # The first was delivered and deleted; the claim of the other two was
    # deleted, not left to expire: they can be claimed at once.
    releases = [path for method, path, _, status in proxy.requests
                if method == 'DELETE' and '/claims/' in path]
    assert len(releases) == 1, proxy.requests
    got = list(queue.claim(ttl=60, grace=60, limit=3))
    assert sorted(m.body['message']['args']['n'] for m in got) == [2, 3]
    bridgeutil.wait_until(lambda: conductor.calls, what='the first message')
    assert [c[2] for c in conductor.calls] == [{'n': 1}]
    assert 'Traceback' not in daemon.log()


@pytest.mark.slow
def test_sigterm_during_a_zaqar_outage(tmp_path, rabbit, zaqar, names):
    """Stopped while Zaqar is down: a prompt, clean exit, nothing acked."""
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar, [
            ('guests', bridgeutil.guests_route(names.exchange)),
            ('conductor', bridgeutil.conductor_route(
                names.exchange, names.conductor, [names.tenant_a]))])
    amqp_queue = bridgeutil.QUEUES[str(config)][1]
    client = bridgeutil.rpc_client(rabbit, names.exchange,
                                   'guestagent.%s' % names.guest)
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(2)
    try:
        zaqar.stop()
        try:
            for n in range(20):
                client.cast({'project_id': names.tenant_a}, 'm', n=n)
            daemon.wait_for_log(lambda t: 'Route guests: Zaqar unavailable'
                                in t, what='the outage seen by the forward '
                                'route')
            daemon.wait_for_log(lambda t: 'Route conductor: Zaqar '
                                'unavailable' in t, what='the outage seen '
                                'by the reverse route')
            # Bounded by the daemon's graceful_shutdown_timeout (20 s):
            # its alarm would exit with 1, not 0.
            assert daemon.stop() == 0
        finally:
            zaqar.start()
        log = daemon.log()
        assert 'Graceful shutdown timeout' not in log
        assert 'Traceback' not in log
        # Nothing was acknowledged: all twenty wait in RabbitMQ.
        with kombu.Connection(rabbit.kombu_url) as conn:
            _, count, _ = conn.default_channel.queue_declare(
                amqp_queue, passive=True)
        assert count == 20
        # ... and reach Zaqar once a bridge runs again.
        daemon = bridgeutil.Daemon(config, tmp_path / 'again.log').start(2)
        got = bridgeutil.drain(zaqar.client(names.tenant_a).queue(
            'guestagent_%s' % names.guest), 20, timeout=90)
        assert sorted(b['message']['args']['n'] for b in got) == \
            list(range(20))
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
