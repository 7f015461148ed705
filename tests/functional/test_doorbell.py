"""Reverse path with a doorbell: no polling of empty queues."""

import pytest

from bridge.zaqar import doorbell
from tests.fixtures import servers
from tests.fixtures import web
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


def start(tmp_path, rabbit, zaqar, names, sweep_interval, tenants=None,
          workers=2, port=None):
    """A daemon with a doorbell route; its ``doorbell_port`` and
    ``metrics_port`` are set on it."""
    port = port or servers.free_port()
    metrics_port = servers.free_port()
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar,
                                     [('conductor', '''
        direction = to_amqp
        exchange = %s
        zaqar_queue = %s
        tenants = %s
        allowed_methods = heartbeat
        doorbell_port = %d
        sweep_interval = %s
        workers = %d
        ''' % (names.exchange, names.conductor,
               ', '.join(tenants or (names.tenant_a, names.tenant_b)),
               port, sweep_interval, workers))],
                                     extra='[metrics]\nport = %d\n'
                                     % metrics_port)
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log')
    daemon.doorbell_port, daemon.metrics_port = port, metrics_port
    return config, daemon.start(workers)


def subscription(zaqar, tenant, queue):
    """The one subscription of ``tenant``'s ``queue``, once there."""
    subs = bridgeutil.wait_until(
        lambda: list(zaqar.client(tenant).queue(queue).subscriptions()),
        what='the doorbell subscription of %s' % tenant)
    assert len(subs) == 1, [(s.subscriber, s.options) for s in subs]
    return subs[0]


def ring(port, headers, queue):
    """POST what Zaqar would to the doorbell; the HTTP status."""
    return web.post_json(port, headers, {
        'ttl': 300, 'body': {}, 'queue_name': queue,
        'Message_Type': 'Notification'})


def refused(daemon):
    """{reason: rings refused} from the daemon's /metrics."""
    found = bridgeutil.samples(daemon.metrics_port)
    return {dict(labels)['reason']: value
            for (name, labels), value in found.items()
            if name == 'bridge_doorbell_rings_refused_total'}


delivered = bridgeutil.heartbeats_seen


def heartbeat(zaqar, tenant, queue, n):
    bridgeutil.post(zaqar, tenant, queue, {'bridge': 1, 'message': {
        'method': 'heartbeat', 'args': {'n': n}, '_unique_id': 'u%d' % n}})


def test_ring_wakes_the_bridge(tmp_path, rabbit, zaqar, names, conductor):
    # The sweep is so slow that only the doorbell can explain a delivery.
    config, daemon = start(tmp_path, rabbit, zaqar, names, 100000)
    try:
        for tenant in (names.tenant_a, names.tenant_b):
            bridgeutil.wait_until(
                lambda t=tenant: list(zaqar.client(t).queue(
                    names.conductor).subscriptions()),
                what='the doorbell subscription of %s' % tenant)
        for n in range(6):
            heartbeat(zaqar, (names.tenant_a, names.tenant_b)[n % 2],
                      names.conductor, n)
        bridgeutil.wait_until(lambda: len(conductor.calls) == 6,
                              what=lambda: 'six heartbeats, got %d'
                              % len(conductor.calls))
        projects = sorted(c[1]['project_id'] for c in conductor.calls)
        assert projects == sorted([names.tenant_a] * 3 + [names.tenant_b] * 3)
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)


def test_sweep_catches_a_lost_ring(tmp_path, rabbit, zaqar, names,
                                   conductor):
    proxy = bridgeutil.HttpProxy(zaqar.url)
    config, daemon = start(tmp_path, rabbit, proxy, names, 0.2)
    try:
        queue = zaqar.client(names.tenant_a).queue(names.conductor)
        bridgeutil.doorbell_started(daemon, 2)
        subs = bridgeutil.wait_until(lambda: list(queue.subscriptions()),
                                     what='the doorbell subscription')
        for sub in subs:
            sub.delete()
        # Let a claim of the safety sweep go by first, so only its next
        # round can find the message.
        claims = '/v2/queues/%s/claims' % names.conductor
        bridgeutil.wait_until(
            lambda: [r for r in proxy.requests if r[0] == 'POST'
                     and r[1].startswith(claims) and r[2] == names.tenant_a],
            what='the claim that follows the subscription')
        heartbeat(zaqar, names.tenant_a, names.conductor, 1)
        bridgeutil.wait_until(lambda: conductor.calls, what='the sweep')
        daemon.wait_for_log(lambda t: 'safety sweep found messages' in t,
                            what='the sweep noticing the lost ring')
        # It subscribed again.
        bridgeutil.wait_until(lambda: list(queue.subscriptions()),
                              what='a new subscription')
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
        proxy.close()


def test_forged_rings_make_no_claim(tmp_path, rabbit, zaqar, names,
                                    conductor):
    victim, attacker = names.tenant_b, names.tenant_a
    # One worker and the victim's queue first: a round of claims that
    # takes the attacker's message has claimed from every queue due
    # before it, so once the attacker's later message arrived, any claim
    # a forged ring caused has been made.
    config, daemon = start(tmp_path, rabbit, zaqar, names, 100000,
                           tenants=(victim, attacker), workers=1)
    port = daemon.doorbell_port
    try:
        # Once the start-up sweep looked at both queues, nothing but a
        # ring makes the bridge claim.
        bridgeutil.doorbell_started(daemon, 1)
        subs = {t: subscription(zaqar, t, names.conductor)
                for t in (victim, attacker)}
        genuine = {t: s.options['post_headers'] for t, s in subs.items()}
        assert set(genuine[victim]) == {doorbell.TENANT_HEADER,
                                        doorbell.PROOF_HEADER}
        # The victim's message waits, and nothing genuine rings for it.
        subs[victim].delete()
        heartbeat(zaqar, victim, names.conductor, 100)

        # Forged by anyone who reaches the port: no proof, the
        # attacker's own proof (read from its own subscription), junk.
        copied = dict(genuine[attacker], **{doorbell.TENANT_HEADER: victim})
        for headers in ({doorbell.TENANT_HEADER: victim}, copied,
                        dict(copied, **{doorbell.PROOF_HEADER: 'junk'})):
            assert ring(port, headers, names.conductor) == 403, headers
        # Forged through Zaqar: the attacker's own subscription to the
        # bridge (another spelling of its URL) with the copied headers.
        zaqar.client(attacker).subscription(
            names.conductor, subscriber='http://127.0.0.1:%d/?x' % port,
            ttl=3600, options={'post_headers': copied})
        heartbeat(zaqar, attacker, names.conductor, 1)
        bridgeutil.wait_until(
            lambda: refused(daemon) == {'missing': 1, 'malformed': 1,
                                        'invalid': 2},
            what=lambda: 'four refused rings, got %s' % refused(daemon))
        heartbeat(zaqar, attacker, names.conductor, 2)
        bridgeutil.wait_until(lambda: 2 in delivered(conductor),
                              what='the attacker\'s own genuine ring')
        assert 100 not in delivered(conductor)
        stats = zaqar.client(victim).queue(names.conductor).stats
        assert (stats['messages']['free'], stats['messages']['claimed']) \
            == (1, 0), stats
        daemon.wait_for_log(lambda t: 'for tenant %r queue %r refused'
                            % (victim, names.conductor) in t,
                            what='the refused ring logged')

        # The victim's genuine ring (the headers the bridge gave it) does
        # make the bridge claim that message.
        assert ring(port, genuine[victim], names.conductor) == 204
        bridgeutil.wait_until(lambda: 100 in delivered(conductor),
                              what='the victim\'s message after its ring')
        assert sorted(delivered(conductor)) == [1, 2, 100]
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)


def test_subscription_from_before_proofs_gets_one(tmp_path, rabbit, zaqar,
                                                  names, conductor):
    # As a bridge without proofs left it: same URL, only the tenant.
    port = servers.free_port()
    old = zaqar.client(names.tenant_a).subscription(
        names.conductor, subscriber='http://127.0.0.1:%d/' % port,
        ttl=3600, options={'post_headers': {
            doorbell.TENANT_HEADER: names.tenant_a}})
    # Once the start-up sweep is over (it signs the old subscription
    # again and looks at both queues), only a ring can bring a message.
    config, daemon = start(tmp_path, rabbit, zaqar, names, 100000,
                           workers=1, port=port)
    try:
        bridgeutil.doorbell_started(daemon, 1)
        subscription(zaqar, names.tenant_b, names.conductor)
        sub = subscription(zaqar, names.tenant_a, names.conductor)
        assert sub.id == old.id
        assert doorbell.PROOF_HEADER in sub.options['post_headers']
        heartbeat(zaqar, names.tenant_a, names.conductor, 1)
        bridgeutil.wait_until(lambda: delivered(conductor) == [1],
                              what='the ring of the re-signed subscription')
        assert refused(daemon) == {}
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
