"""Answers due: the reply route looks for a call's answer when it is due,
without waiting for its doorbell or its poll (bridge/flows/answers_due.py).

The replies route has a doorbell whose rings never come (Zaqar is told to
ring a port nobody serves) and a safety sweep an hour apart, so nothing
but the hint of the forward worker that posted the call makes it look at
the reply queue.
"""

import oslo_messaging
import pytest

from tests import fixtures  # noqa: F401  (the rabbit and zaqar fixtures)
from tests.fixtures import servers
from tests.fixtures import web
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


def start_daemon(tmp_path, rabbit, zaqar, names, window):
    routes = [
        ('guests', bridgeutil.guests_route(names.exchange)),
        ('replies', bridgeutil.route(
            'to_amqp', '', zaqar_queue='bridge_replies',
            tenants=names.tenant_a, doorbell_port=servers.free_port(),
            doorbell_url='http://127.0.0.1:%d/' % servers.free_port(),
            sweep_interval=3600)),
    ]
    metrics_port = servers.free_port()
    extra = (bridgeutil.dead_letter_section(names.dlq)
             + '\n[rpc]\nanswer_due_window = %s\n' % window
             + '\n[metrics]\nport = %d\n' % metrics_port)
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit,
                                     zaqar, routes, extra=extra)
    d = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(2)
    # The replies worker's first pass (a claim of every queue) is over
    # once it reports Zaqar up: from then on only a hint makes it look.
    key = ('bridge_connection_up', frozenset({'route': 'replies',
                                              'side': 'zaqar'}.items()))

    def first_claim_done():
        status, _ = web.get(metrics_port, '/metrics')
        if status != 200:     # the endpoint starts after the routes
            return False
        return bridgeutil.samples(metrics_port).get(key) == 1
    bridgeutil.wait_until(first_claim_done,
                          what='the replies route\'s first claim')
    return d


@pytest.mark.parametrize('window', [2.0, 0.0], ids=['hinted', 'off'])
def test_answer_found_when_due_not_by_doorbell_or_sweep(
        tmp_path, rabbit, zaqar, names, window):
    d = start_daemon(tmp_path, rabbit, zaqar, names, window)
    client = zaqar.client(names.tenant_a)
    guest = bridgeutil.Guest(client, 'guestagent_%s' % names.guest,
                             bridgeutil.guest_handler)
    try:
        caller = bridgeutil.guest_rpc_client(rabbit, names, timeout=10)
        ctx = {'project_id': names.tenant_a}
        if window:
            for n in range(3):
                assert caller.call(ctx, 'get_status', n=n)['args'] == {
                    'n': n}
        else:
            with pytest.raises(oslo_messaging.MessagingTimeout):
                caller.call(ctx, 'get_status', n=0)
            # The guest did answer: the answer waits, unread, in the reply
            # queue; with hints it would have been taken.
            assert len(guest.tokens) == 1
            waiting = client.queue('bridge_replies').messages(echo=True)
            assert len(list(waiting)) == 1
        assert 'dead-lettered' not in d.log()
    finally:
        guest.stop()
        assert d.stop() == 0
        bridgeutil.delete_queues(rabbit, d.config)
