"""What a guest's own credentials let it do in Zaqar, with real Keystone.

Tenant A's guest holds either a Keystone token of A's project or a
pre-signed URL; neither may list, read, claim, post or delete in tenant
B's queues.  Each refusal is checked with raw HTTP (so no client quietly
drops a header), and B's queue is checked untouched afterwards.
"""

import time
import uuid

import pytest
import requests

from bridge.zaqar import clients as zaqar_clients
from tests.unit import confutil

pytestmark = pytest.mark.functional

REFUSED = (401, 403, 404)


class Http:
    """Raw Zaqar v2 requests with a token or pre-signed URL fields."""

    def __init__(self, zaqar, token=None, signed=None, project=None):
        self.url = zaqar.url + '/v2'
        self.headers = {'Client-ID': str(uuid.uuid4())}
        if token:
            self.headers['X-Auth-Token'] = token
        if signed:
            self.headers.update({
                'URL-Signature': signed['signature'],
                'URL-Expires': signed['expires'],
                'URL-Methods': ','.join(signed['methods']),
                'URL-Paths': ','.join(signed['paths'])})
            project = project or signed['project']
        if project:
            self.headers['X-Project-ID'] = project

    def __call__(self, method, path, body=None, **headers):
        return requests.request(method, self.url + path, json=body,
                                headers=dict(self.headers, **headers),
                                timeout=30)

    def every_operation(self, queue, message_id=None):
        """List, read, claim, post, pop, delete: the status of each.

        ``message_id``: also read and delete that message by id.
        """
        msgs = '/queues/%s/messages' % queue
        ops = {
            'list queues': self('GET', '/queues'),
            'read': self('GET', msgs + '?echo=true'),
            'claim': self('POST', '/queues/%s/claims' % queue,
                          {'ttl': 60, 'grace': 60}),
            'post': self('POST', msgs,
                         {'messages': [{'ttl': 60, 'body': 'x'}]}),
            'pop': self('DELETE', msgs + '?pop=20'),
            'purge': self('PUT', '/queues/%s/purge' % queue,
                          {'resource_types': ['messages']}),
            'delete queue': self('DELETE', '/queues/%s' % queue),
        }
        if message_id:
            ops['read one'] = self('GET', '%s/%s' % (msgs, message_id))
            ops['delete one'] = self('DELETE', '%s/%s' % (msgs, message_id))
        return {op: resp.status_code for op, resp in ops.items()}


def queue_names(http):
    resp = http('GET', '/queues')
    assert resp.status_code == 200, resp.text
    return [q['name'] for q in resp.json()['queues']]


def seed(client, queue):
    """Post one message; return its id."""
    client.queue(queue).post([{'ttl': 600, 'body': {'owner': 'b'}}])
    return [m.id for m in client.queue(queue).messages(echo=True)][0]


def untouched(client, queue, message_id):
    """The queue holds exactly its one message, unclaimed."""
    messages = list(client.queue(queue).messages(echo=True))
    assert [m.id for m in messages] == [message_id]
    assert list(client.queue(queue).claim(ttl=60, grace=60)) != []


def test_a_token_cannot_touch_b_queues(keystone, zaqar_keystone,
                                       unique_name):
    a, b = keystone.tenants['a'], keystone.tenants['b']
    queue = unique_name('guestagent')
    zb = zaqar_keystone.tenant_client(b)
    b_msg = seed(zb, queue)
    a_token = keystone.tenant_session(a).get_token()
    # A's token, with A's project or B's in X-Project-ID (keystonemiddleware
    # replaces the header with the token's project): B's queue of the same
    # name is invisible, and whatever A does happens in A's project.
    for project in (a.id, b.id):
        as_a = Http(zaqar_keystone, token=a_token, project=project)
        assert queue not in queue_names(as_a)
        assert b_msg not in as_a('GET', '/queues/%s/messages?echo=true'
                                 % queue).text
        as_a.every_operation(queue)
        assert as_a('GET', '/queues/%s/claims' % queue).status_code in (
            404, 405)
    # Neither a bad token nor a project header without a token passes.
    for http in (Http(zaqar_keystone, token='gAAAAABforged', project=b.id),
                 Http(zaqar_keystone, project=b.id)):
        ops = http.every_operation(queue, b_msg)
        assert set(ops.values()) == {401}, ops
    untouched(zb, queue, b_msg)


@pytest.mark.xfail(strict=True, reason=(
    'zaqar 23 Redis driver: messages are stored under their bare id; '
    'get/delete by id only check that a queue of that name exists in the '
    "caller's project (zaqar/storage/redis/messages.py), so a message id "
    'is a capability across projects'))
def test_message_id_of_b_is_useless_to_a(keystone, zaqar_keystone,
                                         unique_name):
    a, b = keystone.tenants['a'], keystone.tenants['b']
    queue = unique_name('guestagent')
    zb = zaqar_keystone.tenant_client(b)
    b_msg = seed(zb, queue)
    za = zaqar_keystone.tenant_client(a)
    za.queue(queue).post([{'ttl': 60, 'body': 'a queue of the same name'}])
    signed = signed_for(za, queue, methods=('GET',))
    for http in (Http(zaqar_keystone, token=keystone.tenant_session(a)
                      .get_token()),
                 Http(zaqar_keystone, signed=signed)):
        path = '/queues/%s/messages' % queue
        assert http('GET', '%s/%s' % (path, b_msg)).status_code == 404
        assert b_msg not in http('GET', '%s?ids=%s' % (path, b_msg)).text
    Http(zaqar_keystone, token=keystone.tenant_session(a).get_token())(
        'DELETE', '/queues/%s/messages/%s' % (queue, b_msg))
    untouched(zb, queue, b_msg)


def signed_for(client, queue, methods=('GET', 'POST'), ttl=600,
               paths=('messages',)):
    return client.queue(queue).signed_url(paths=list(paths),
                                          methods=list(methods),
                                          ttl_seconds=ttl)


def tampered(signed, **changes):
    return dict(signed, **changes)


def refused_everywhere(zaqar, signed, queue, message_id=None,
                       **header_changes):
    http = Http(zaqar, signed=signed)
    http.headers.update(header_changes)
    ops = http.every_operation(queue, message_id)
    assert all(status in REFUSED for status in ops.values()), ops


def test_signed_url_reaches_its_own_queue_only(keystone, zaqar_keystone,
                                               unique_name):
    a, b = keystone.tenants['a'], keystone.tenants['b']
    za = zaqar_keystone.tenant_client(a)
    zb = zaqar_keystone.tenant_client(b)
    qa, qb = unique_name('guest-a'), unique_name('guest-b')
    b_msg = seed(zb, qb)
    za.queue(qa).post([{'ttl': 600, 'body': 'hello'}])
    signed = signed_for(za, qa)
    guest = Http(zaqar_keystone, signed=signed)
    assert guest('POST', '/queues/%s/messages' % qa, {'messages': [
        {'ttl': 60, 'body': 'from guest'}]}).status_code == 201
    assert guest('GET', '/queues/%s/messages' % qa).status_code == 200
    # B's queue, in B's project or under A's: refused, whatever is tried.
    refused_everywhere(zaqar_keystone, signed, qb, b_msg)
    refused_everywhere(zaqar_keystone, signed, qb, b_msg,
                       **{'X-Project-ID': b.id})
    refused_everywhere(zaqar_keystone, signed, qa, b_msg,
                       **{'X-Project-ID': b.id})
    # Widening what was signed breaks the signature.
    refused_everywhere(zaqar_keystone, signed, qb, b_msg,
                       **{'URL-Paths': '/v2/queues/%s/messages' % qb})
    refused_everywhere(zaqar_keystone, signed, qa, b_msg,
                       **{'URL-Methods': 'GET,POST,DELETE,PATCH'})
    # A's own queue: not the queue itself, not claims, not DELETE.
    ops = guest.every_operation(qa)
    for op in ('list queues', 'claim', 'pop', 'purge', 'delete queue'):
        assert ops[op] in REFUSED, (op, ops)
    untouched(zb, qb, b_msg)


def test_expired_or_tampered_signed_url_refused(keystone, zaqar_keystone,
                                                unique_name):
    za = zaqar_keystone.tenant_client(keystone.tenants['a'])
    queue = unique_name('guest-a')
    za.queue(queue).post([{'ttl': 600, 'body': 'hello'}])
    signed = signed_for(za, queue)
    path = '/queues/%s/messages' % queue
    assert Http(zaqar_keystone, signed=signed)('GET', path).status_code == 200
    sig = signed['signature']
    flipped = sig[:-1] + ('0' if sig[-1] != '0' else '1')
    later = signed['expires'].replace(signed['expires'][:4],
                                      str(int(signed['expires'][:4]) + 1))
    for bad in (tampered(signed, signature=flipped),
                tampered(signed, signature=''),
                tampered(signed, expires=later),
                tampered(signed, methods=['GET', 'POST', 'DELETE'])):
        assert Http(zaqar_keystone, signed=bad)('GET', path).status_code \
            in REFUSED, bad
    expired = signed_for(za, queue, ttl=1)
    time.sleep(2.5)
    assert Http(zaqar_keystone, signed=expired)('GET', path).status_code \
        in REFUSED


ROUTE = '''
[route:r1]
direction = to_zaqar
exchange = trove
tenant = context:project_id
'''


def service_project_clients(tmp_path, keystone, zaqar):
    conf, _ = confutil.load(tmp_path, keystone.bridge_zaqar_section(
        'service_project', url=zaqar.url) + ROUTE
        + 'zaqar_queue = guestagent_{tenant}\n'
        'reply_queue = replies_{tenant}\n')
    return zaqar_clients.Clients(conf)


def test_service_project_signed_urls_keep_tenants_apart(
        tmp_path, keystone, zaqar_keystone, unique_name):
    """tenant_access = service_project: one project, queues per tenant.

    The bridge signs each guest's URL for the guest's queues only; with it
    a guest of A can't reach B's queue in the same (bridge's) project.
    """
    a, b = keystone.tenants['a'], keystone.tenants['b']
    clients = service_project_clients(tmp_path, keystone, zaqar_keystone)
    bridge = clients.for_project(clients.project_of(a.id))
    assert clients.project_of(b.id) == clients.project_of(a.id)
    qa, qb = 'guestagent_%s' % a.id, 'guestagent_%s' % b.id
    bridge.queue(qa).post([{'ttl': 600, 'body': 'for a'}])
    b_msg = seed(bridge, qb)
    signed = signed_for(bridge, qa, methods=('GET', 'POST', 'DELETE'),
                        paths=('messages', 'claims'))
    assert signed['project'] == clients.service_project
    guest = Http(zaqar_keystone, signed=signed)
    assert guest('GET', '/queues/%s/messages' % qa).status_code == 200
    refused_everywhere(zaqar_keystone, signed, qb, b_msg)
    # A's Keystone token reaches A's project, not the bridge's.
    as_a = Http(zaqar_keystone, token=keystone.tenant_session(a).get_token(),
                project=clients.service_project)
    assert qb not in queue_names(as_a)
    assert as_a('GET', '/queues/%s/messages/%s' % (qb, b_msg)
                ).status_code == 404
    untouched(bridge, qb, b_msg)
    bridge.queue(qa).delete()
    bridge.queue(qb).delete()
