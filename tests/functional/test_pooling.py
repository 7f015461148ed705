"""The bridge, unchanged, against a pooled zaqar-server.

Pooling is how Zaqar scales out: a pool catalogue (the management store)
maps each (project, queue) to one of several message stores, the pools.
Here two Redis databases are the pools (``zaqar_pooled``: started by
tools/zaqar-server.sh --pools), both in one flavor.  Zaqar picks a pool by
weight when a queue is created; the test weighs the other pool 0 while a
tenant's queues are created, so tenant A's queues are in one pool and
tenant B's in the other, and then shows in both Redis databases that each
holds only its tenant's queues, after calls and casts both ways through
the installed daemon.
"""

from urllib import parse
import uuid

import oslo_messaging
import pytest
import requests

from tests.fixtures import redisdb
from tests.functional import bridgeutil
from tests.functional import guestutil

pytestmark = pytest.mark.functional


def request(zaqar, method, path, body=None, project='pool-admin'):
    """One request as ``project``; the pools API wants the admin role (no
    auth: the roles come from X-Roles)."""
    resp = requests.request(method, zaqar.url + path, json=body, timeout=30,
                            headers={'Client-ID': str(uuid.uuid4()),
                                     'X-Project-ID': project,
                                     'X-Roles': 'admin'})
    assert resp.status_code < 300, (method, path, resp.text)
    return resp


def weigh(zaqar, weights):
    for pool, weight in weights.items():
        request(zaqar, 'PATCH', '/v2/pools/%s' % pool, {'weight': weight})


def queues_in(db, tenant):
    """The queues of ``tenant`` whose keys database ``db`` holds
    (``<project>.<queue>.<what>``, e.g. the rank counter, kept after the
    last message went)."""
    with redisdb.Redis(db) as redis:
        return {key.split('.')[1] for key in redis.keys('%s.*' % tenant)}


def test_calls_and_casts_both_ways_across_two_pools(
        tmp_path, rabbit, zaqar_pooled, conductor, names):
    zaqar = zaqar_pooled
    listed = request(zaqar, 'GET', '/v2/pools?detailed=true').json()['pools']
    pools = {'pool-db%d' % db: db for db in zaqar.pools}
    assert {(p['name'], p['flavor']) for p in listed} == {
        (name, 'pooled') for name in pools}
    (pool_a, db_a), (pool_b, db_b) = sorted(pools.items())
    guest_queue = 'guestagent_%s' % names.guest
    queues = {guest_queue, names.conductor, 'bridge_replies', 'reply_guest1'}
    homes = {names.tenant_a: (pool_a, db_a), names.tenant_b: (pool_b, db_b)}
    try:
        for tenant, (pool, _) in homes.items():
            weigh(zaqar, {p: 100 if p == pool else 0 for p in pools})
            for queue in sorted(queues):  # zaqarclient v2 would not PUT
                request(zaqar, 'PUT', '/v2/queues/%s' % queue, {},
                        project=tenant)
    finally:
        weigh(zaqar, {p: 100 for p in pools})

    d = bridgeutil.start_rpc_daemon(tmp_path, rabbit, zaqar, names)
    try:
        client = bridgeutil.guest_rpc_client(rabbit, names)
        for n, tenant in enumerate(homes):
            ctx = {'project_id': tenant}
            # A controller's cast and call to the tenant's guest.
            client.cast(ctx, 'restart', n=n)
            (cast,) = bridgeutil.drain(
                zaqar.client(tenant).queue(guest_queue), 1)
            assert cast['message']['method'] == 'restart'
            assert cast['message']['args'] == {'n': n}
            guest = bridgeutil.Guest(zaqar.client(tenant), guest_queue,
                                     bridgeutil.guest_handler)
            try:
                assert client.call(ctx, 'get_status', n=n) == {
                    'method': 'get_status', 'args': {'n': n}}
            finally:
                guest.stop()
            # The guest's cast and call to the conductor.
            bridgeutil.post(zaqar, tenant, names.conductor, {
                'bridge': 1, 'message': {
                    'method': 'heartbeat', 'args': {'n': n},
                    '_unique_id': uuid.uuid4().hex}})
            bridgeutil.post(zaqar, tenant, names.conductor, {
                'bridge': 1, 'message': {
                    'method': 'heartbeat', 'args': {'n': n, 'call': True},
                    '_msg_id': 'm-%d' % n, '_reply_q': 'reply_guest1',
                    '_unique_id': uuid.uuid4().hex}})
            (reply,) = bridgeutil.drain(
                zaqar.client(tenant).queue('reply_guest1'), 1)
            assert reply['message']['_msg_id'] == 'm-%d' % n
            assert reply['message']['result'] == {
                'seen': {'n': n, 'call': True}}
            bridgeutil.wait_until(
                lambda seen=2 * n + 2: len(conductor.calls) >= seen,
                what='the heartbeats of %s' % tenant)
            assert [c[1]['project_id'] for c in conductor.calls[-2:]] == [
                tenant, tenant]
    finally:
        bridgeutil.stop_rpc_daemon(d, rabbit)

    # Each tenant's queues are in its pool's Redis database, none in the
    # other one (queues the bridge made itself may be in either).
    for tenant, (_, db) in homes.items():
        other = db_b if db == db_a else db_a
        assert queues <= queues_in(db, tenant)
        assert not queues & queues_in(other, tenant)


def test_zaqar_guests_on_pooled_zaqar(tmp_path, rabbit, zaqar_pooled,
                                      conductor, names):
    """The zaqar:// guest driver as the guests: its queues go wherever
    Zaqar puts them (a post creates each), and both ways work."""
    zaqar = zaqar_pooled
    netloc = parse.urlsplit(zaqar.url).netloc
    d = bridgeutil.start_rpc_daemon(tmp_path, rabbit, zaqar, names)
    try:
        controller = guestutil.controller_client(rabbit, names)
        for n, tenant in enumerate((names.tenant_a, names.tenant_b)):
            url = 'zaqar://%s/?project_id=%s' % (netloc, tenant)
            agent = guestutil.GuestAgent(tenant)
            srv = guestutil.guest_server(url, 'guestagent.%s' % names.guest,
                                         'host', agent, names.exchange)
            try:
                ctxt = {'project_id': tenant}
                assert controller.call(ctxt, 'get_status', n=n) == {
                    'guest': tenant, 'project': tenant, 'args': {'n': n}}
                controller.cast(ctxt, 'prepare', memory=n)
                bridgeutil.wait_until(lambda a=agent: a.casts,
                                      what='the cast to %s' % tenant)
                assert agent.casts == [{'memory': n}]
                guest = oslo_messaging.get_rpc_client(
                    srv[1], oslo_messaging.Target(topic=names.conductor),
                    timeout=20)
                guest.cast({}, 'heartbeat', n=n)
                assert guest.call({}, 'heartbeat', n=n, call=True) == {
                    'seen': {'n': n, 'call': True}}
                bridgeutil.wait_until(
                    lambda seen=2 * n + 2: len(conductor.calls) >= seen,
                    what='the heartbeats of %s' % tenant)
                assert [c[1]['project_id'] for c in conductor.calls[-2:]] \
                    == [tenant, tenant]
            finally:
                guestutil.stop(*srv)
    finally:
        bridgeutil.stop_rpc_daemon(d, rabbit)
