"""The daemon with tenant_access = service_project: one Zaqar project.

Every tenant's queues live in the bridge's own project ("service"), told
apart by name only; guests hold pre-signed URLs for their own queues and
nothing else.  The guest here is an unmodified oslo.messaging server and
client on ``zaqar://`` with ``signed_url_file``, the controller side
unmodified oslo.messaging on ``rabbit://``, Keystone and zaqar-server
real.  RPC works both ways, and a guest can neither reach another
tenant's queues nor make the bridge answer into them.
"""


import oslo_messaging
import pytest
from zaqarclient.queues.v2 import client as zaqar_v2
from zaqarclient.transport import errors as zaqar_errors

from bridge import wire
from tests.fixtures import servers
from tests.functional import bridgeutil
from tests.functional import guestutil

pytestmark = pytest.mark.functional


@pytest.fixture(scope='module')
def setup(tmp_path_factory, rabbit, keystone, zaqar_keystone):
    """The daemon, a conductor, and tenant A's guest on signed URLs."""
    a, b = keystone.tenants['a'], keystone.tenants['b']
    # Keystone project ids are 32 characters: short names keep every
    # queue (fanout included) within Zaqar's 64, so none is shortened
    # (the signed URLs name them as they read).
    names = signed_names()
    tmp = tmp_path_factory.mktemp('service-project')
    config = bridgeutil.write_config(
        tmp / 'bridge.conf', rabbit, zaqar_keystone,
        guestutil.shared_routes(names, '%s, %s' % (a.id, b.id)),
        extra=keystone.bridge_zaqar_section('service_project')
        + bridgeutil.dead_letter_section(names.dlq))
    daemon = bridgeutil.Daemon(config, tmp / 'bridge.log').start(4)
    conductor = bridgeutil.Conductor()
    conductor_server = bridgeutil.rpc_server(rabbit, names.exchange,
                                             names.conductor, conductor)
    agent, guest, transport, urls = guestutil.start_signed_guest(
        daemon.config, zaqar_keystone, a.id, names.guest,
        tmp / 'guest-a.json')
    yield names, daemon, conductor, agent, transport, urls
    try:
        guestutil.stop(guest, transport)
        bridgeutil.stop_server(conductor_server)
        assert daemon.stop() == 0
    finally:
        bridgeutil.delete_queues(rabbit, config)


def signed_names():
    class Names:
        exchange = servers.unique_name('ex')
        guest = servers.unique_name('g')[:10]
        conductor = servers.unique_name('conductor')
        dlq = servers.unique_name('dlq')
    return Names


def test_signed_urls_are_for_the_bridge_project(setup, keystone):
    names, _, _, _, _, urls = setup
    a = keystone.tenants['a']
    projects = {u['project'] for u in urls}
    assert len(projects) == 1 and a.id not in projects
    assert sorted(u['queue'] for u in urls) == sorted(
        guestutil.guest_queues(a.id, names.guest).values())


def test_controller_call_to_the_guest(setup, rabbit, keystone):
    names, _, _, agent, _, _ = setup
    a = keystone.tenants['a']
    client = guestutil.controller_client(rabbit, names)
    assert client.call({'project_id': a.id}, 'get_status', probe=2) == {
        'guest': 'a', 'project': a.id, 'args': {'probe': 2}}


def test_guest_call_to_the_conductor(setup, keystone):
    names, _, conductor, _, transport, _ = setup
    a, b = keystone.tenants['a'], keystone.tenants['b']
    client = oslo_messaging.get_rpc_client(
        transport, oslo_messaging.Target(topic='conductor'), timeout=30)
    before = len(conductor.calls)
    assert client.call({'project_id': b.id}, 'heartbeat', n=3) == {
        'seen': {'n': 3}}
    (_, ctxt, _), = conductor.calls[before:]
    assert ctxt['project_id'] == a.id


def guest_client(zaqar_keystone, fields, **override):
    options = {'signature': fields['signature'],
               'expires': fields['expires'], 'methods': fields['methods'],
               'paths': fields['paths'], 'os_project_id': fields['project']}
    options.update(override)
    return zaqar_v2.Client(zaqar_keystone.url, version=2, conf={
        'auth_opts': {'backend': 'signed-url', 'options': options}})


def test_a_signed_url_reaches_its_queue_only(setup, keystone,
                                             zaqar_keystone):
    names, _, _, _, _, urls = setup
    b = keystone.tenants['b']
    conductor_a = [u for u in urls if u['queue'].endswith('-conductor')][0]
    conductor_b = '%s-conductor' % b.id
    guest = guest_client(zaqar_keystone, conductor_a)
    with pytest.raises(zaqar_errors.ResourceNotFound):
        guest.queue(conductor_b, auto_create=False).post(
            [{'ttl': 60, 'body': {'spoof': 1}}])
    # Widening the signed paths to B's queue breaks the signature.
    widened = guest_client(zaqar_keystone, conductor_a, paths=[
        '/v2/queues/%s/messages' % conductor_b])
    with pytest.raises(zaqar_errors.ResourceNotFound):
        widened.queue(conductor_b, auto_create=False).post(
            [{'ttl': 60, 'body': {'spoof': 2}}])


def test_a_guest_cannot_have_its_call_answered_into_another_tenant(
        setup, rabbit, keystone, zaqar_keystone):
    names, daemon, conductor, _, _, urls = setup
    a, b = keystone.tenants['a'], keystone.tenants['b']
    conductor_a = [u for u in urls if u['queue'].endswith('-conductor')][0]
    foreign = '%s-reply_%s' % (b.id, names.guest[-8:])
    before = len(conductor.calls)
    call = {'method': 'heartbeat', 'args': {}, '_msg_id': 'm-spoof',
            '_reply_q': foreign, '_unique_id': 'u-spoof-reply'}
    guest_client(zaqar_keystone, conductor_a).queue(
        conductor_a['queue'], auto_create=False).post(
        [{'ttl': 300, 'body': wire.body(call)}])
    (letter,) = bridgeutil.dead_letters(rabbit, names.dlq, 1)
    assert letter.headers['x-bridge-tenant'] == a.id
    assert 'is not a reply queue of tenant %s' % a.id in \
        letter.headers['x-bridge-reason']
    assert len(conductor.calls) == before
