"""A guest with pre-signed URLs only, every queue name carrying its tenant.

This is how guests work with ``[zaqar] tenant_access = service_project``:
queue names hold the tenant (the bridge's ``{tenant}`` templates, the
driver's ``queue_prefix``), and the guest holds one signed URL per queue
it uses (``signed_url_file``, printed by ``amqp-zaqar-bridge-manage
signed-url``) and no other credential.  Here zaqar-server runs without
auth, so tenants still have projects of their own;
``tests/security/test_service_project.py`` runs the same guest against
Keystone and a single shared project.

The guest is an unmodified oslo.messaging RPC server and client on
``zaqar://``; the controller side is unmodified oslo.messaging on
``rabbit://``.
"""


import oslo_messaging
import pytest

from bridge import wire
from tests.functional import bridgeutil
from tests.functional import guestutil

pytestmark = pytest.mark.functional

# What a signed guest may do on each of its queues.


@pytest.fixture
def daemon(tmp_path, rabbit, zaqar, names):
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar,
        guestutil.shared_routes(names, '%s, %s' % (names.tenant_a,
                                                   names.tenant_b)),
        extra=bridgeutil.dead_letter_section(names.dlq))
    d = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(4)
    yield d
    assert d.stop() == 0
    bridgeutil.delete_queues(rabbit, config)


@pytest.fixture
def signed_guest(tmp_path, daemon, zaqar, names, conductor):
    """tenant A's guest: an RPC server and a client, signed URLs only."""
    agent, server, transport, _ = guestutil.start_signed_guest(
        daemon.config, zaqar, names.tenant_a, names.guest,
        tmp_path / 'guest-urls.json')
    yield agent, transport
    guestutil.stop(server, transport)


def test_controller_calls_a_signed_guest(signed_guest, rabbit, names):
    client = guestutil.controller_client(rabbit, names)
    ctxt = {'project_id': names.tenant_a}
    assert client.call(ctxt, 'get_status', probe=1) == {
        'guest': 'a', 'project': names.tenant_a, 'args': {'probe': 1}}
    client.cast(ctxt, 'prepare', memory=512)
    bridgeutil.wait_until(lambda: signed_guest[0].casts == [{'memory': 512}],
                          what='the cast')


def test_signed_guest_calls_the_conductor(signed_guest, conductor, names):
    _, transport = signed_guest
    client = oslo_messaging.get_rpc_client(
        transport, oslo_messaging.Target(topic='conductor'), timeout=20)
    result = client.call({'project_id': names.tenant_b}, 'heartbeat', n=7)
    assert result == {'seen': {'n': 7}}
    (_, ctxt, _), = conductor.calls
    assert ctxt['project_id'] == names.tenant_a


def test_a_call_naming_another_tenants_reply_queue_is_refused(
        daemon, rabbit, zaqar, names, conductor):
    # Tenant A asks for the answer in tenant B's reply queue.
    foreign = '%s-reply_x' % names.tenant_b
    call = {'method': 'heartbeat', 'args': {}, '_msg_id': 'm-1',
            '_reply_q': foreign, '_unique_id': 'u-foreign'}
    zaqar.client(names.tenant_a).queue('%s-conductor' % names.tenant_a).post(
        [{'ttl': 300, 'body': wire.body(call)}])
    (letter,) = bridgeutil.dead_letters(rabbit, names.dlq, 1)
    assert letter.headers['x-bridge-route'] == 'conductor'
    assert letter.headers['x-bridge-reason'] == (
        "_reply_q %r is not a reply queue of tenant %s (route conductor "
        "guest_reply_queue = {tenant}-reply_*)" % (foreign, names.tenant_a))
    assert conductor.calls == []
    daemon.wait_for_log(lambda text: 'message u-foreign' in text,
                        what='a log line naming the message')
    (line,) = [x for x in daemon.log().splitlines() if 'u-foreign' in x]
    assert line.count(foreign) == 1 and 'Traceback' not in daemon.log()
