"""Several tenants on one reverse worker: a flood does not starve the rest.

README (Thousands of tenants): "Each round takes at most claim_limit
messages from each tenant, and tenant_rate_limit caps a noisy tenant; its
overflow stays in Zaqar."  Asserted on counts and order, not on time.
"""

import pytest

from tests.functional import bridgeutil

pytestmark = [pytest.mark.functional, pytest.mark.slow]

FLOOD = 200


def test_flooding_tenant_does_not_starve_a_quiet_one(
        tmp_path, rabbit, zaqar, names, conductor):
    # One worker serves both tenants; at 10 messages a second the flood
    # lasts about 20 s, the quiet tenant's few messages a round or two.
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar, [
            ('conductor', bridgeutil.conductor_route(
                names.exchange, names.conductor,
                [names.tenant_a, names.tenant_b], claim_limit=5,
                tenant_rate_limit=10, poll_interval=0.2))])
    flood = zaqar.client(names.tenant_a).queue(names.conductor)
    quiet = zaqar.client(names.tenant_b).queue(names.conductor)
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(1)

    def received(tenant):
        return [c for c in list(conductor.calls)
                if c[1]['project_id'] == tenant]
    try:
        for start in range(0, FLOOD, 20):
            flood.post([bridgeutil.heartbeat(n, ttl=600)
                        for n in range(start, start + 20)])
        bridgeutil.wait_until(lambda: received(names.tenant_a),
                              what='the flood being drained')
        quiet.post([bridgeutil.heartbeat(n) for n in range(3)])
        bridgeutil.wait_until(lambda: len(received(names.tenant_b)) == 3,
                              timeout=60,
                              what='the quiet tenant\'s three messages')
        # The quiet tenant got through while the flood was still being
        # drained: most of it was still waiting in Zaqar.
        drained = len(received(names.tenant_a))
        assert drained < FLOOD // 2, drained
        assert flood.stats['messages']['total'] > 0
        # The overflow was kept, not dropped: the whole flood arrives.
        bridgeutil.wait_until(
            lambda: len(received(names.tenant_a)) == FLOOD, timeout=180,
            interval=1, what=lambda: 'the flood, got %d'
            % len(received(names.tenant_a)))
        assert sorted(c[2]['n'] for c in received(names.tenant_a)) == \
            list(range(FLOOD))
        assert flood.stats['messages']['total'] == 0
    finally:
        assert daemon.stop() == 0
        bridgeutil.delete_queues(rabbit, config)
