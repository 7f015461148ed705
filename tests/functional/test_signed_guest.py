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

import json

import oslo_messaging
import pytest

from bridge import wire
from tests.functional import bridgeutil
from tests.functional.test_guest_driver import controller_client
from tests.functional.test_guest_driver import guest_server
from tests.functional.test_guest_driver import GuestAgent
from tests.functional.test_guest_driver import stop

pytestmark = pytest.mark.functional

# What a signed guest may do on each of its queues.
METHODS = 'GET,POST,PATCH,DELETE'


def shared_routes(names, tenants):
    """Routes whose queue names all carry the tenant."""
    return [
        ('guests', '''
            direction = to_zaqar
            exchange = %s
            binding_keys = guestagent.*
            tenant = context:project_id
            zaqar_queue = {tenant}-{routing_key}
            reply_queue = {tenant}-replies
            ''' % names.exchange),
        ('conductor', '''
            direction = to_amqp
            exchange = %s
            zaqar_queue = {tenant}-conductor
            routing_key = %s
            tenants = %s
            allowed_methods = heartbeat
            guest_reply_queue = {tenant}-reply_*
            poll_interval = 0.1
            ''' % (names.exchange, names.conductor, tenants)),
        ('replies', '''
            direction = to_amqp
            exchange =
            zaqar_queue = {tenant}-replies
            tenants = %s
            poll_interval = 0.05
            ''' % tenants),
    ]


@pytest.fixture
def daemon(tmp_path, rabbit, zaqar, names):
    config = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar,
        shared_routes(names, '%s, %s' % (names.tenant_a, names.tenant_b)),
        extra=bridgeutil.dead_letter_section(names.dlq))
    d = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(4)
    yield d
    assert d.stop() == 0
    bridgeutil.delete_queues(rabbit, config)


def guest_queues(tenant, guest):
    """The queues a Trove-like guest uses, as the templates name them."""
    return {'serve': '%s-guestagent_%s' % (tenant, guest),
            'answers': '%s-replies' % tenant,
            'conductor': '%s-conductor' % tenant,
            'calls': '%s-reply_%s' % (tenant, guest[-8:])}


def issue_signed_urls(config, tenant, queues, path):
    """``amqp-zaqar-bridge-manage signed-url`` as installed -> a file."""
    args = ['signed-url', '--tenant', tenant, '--methods', METHODS,
            '--expires-in', '3600', '--format', 'json']
    for queue in queues:
        args += ['--queue', queue]
    result = bridgeutil.run_manage(config, *args)
    assert result.returncode == 0, result.stderr
    urls = json.loads(result.stdout)
    assert sorted(u['queue'] for u in urls) == sorted(queues)
    path.write_text(result.stdout)
    return path


def signed_guest_url(zaqar, tenant, signed_file, calls_queue):
    """The queues' project comes from the file; ``tenant`` names them."""
    host = zaqar.url.split('://', 1)[1].rstrip('/')
    return ('zaqar://%s/?auth_strategy=signed_url&queue_prefix=%s-'
            '&reply_queue=%s&signed_url_file=%s'
            % (host, tenant, calls_queue, signed_file))


def start_signed_guest(config, zaqar, tenant, guest, path):
    """A guest agent on signed URLs only: ``(agent, server, transport,
    signed URLs)``.  Its queues are named after ``tenant`` and live in the
    project the signed URLs name (its transport URL has no project_id).
    """
    queues = guest_queues(tenant, guest)
    signed_file = issue_signed_urls(config, tenant, list(queues.values()),
                                    path)
    url = signed_guest_url(zaqar, tenant, signed_file, queues['calls'])
    agent = GuestAgent('a')
    server, transport = guest_server(url, 'guestagent.%s' % guest,
                                     'host-a', agent, None)
    return agent, server, transport, json.loads(signed_file.read_text())


@pytest.fixture
def signed_guest(tmp_path, daemon, zaqar, names, conductor):
    """tenant A's guest: an RPC server and a client, signed URLs only."""
    agent, server, transport, _ = start_signed_guest(
        daemon.config, zaqar, names.tenant_a, names.guest,
        tmp_path / 'guest-urls.json')
    yield agent, transport
    stop(server, transport)


def test_controller_calls_a_signed_guest(signed_guest, rabbit, names):
    client = controller_client(rabbit, names)
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
