"""Context allowlists (both ways) and bounds on a guest's fields."""

import json

import pytest

from bridge import bounds
from bridge.daemon import config
from bridge import envelope
from bridge.reject import Reject
from tests.unit import confutil
from tests.unit.confutil import fwd
from tests.unit.confutil import oslo_body
from tests.unit.confutil import rev

# What a controller's TroveContext.to_dict() (trove 26) packs, plus the
# oslo.context fields a guest tried to smuggle in during the attack.
CONTROLLER_CONTEXT = {
    'user': 'admin', 'user_id': 'admin', 'project_id': 'tenant-a',
    'tenant': 'tenant-a', 'project': 'tenant-a', 'system_scope': 'all',
    'domain': 'default', 'user_domain': 'default',
    'project_domain': 'default', 'domain_id': 'default',
    'user_domain_id': 'default', 'project_domain_id': 'default',
    'is_admin': True, 'read_only': False, 'show_deleted': True,
    'auth_token': 'gAAAAA-secret', 'service_token': 'gAAAAA-service',
    'auth_token_info': {'token': {'roles': [{'name': 'admin'}]}},
    'request_id': 'req-1', 'global_request_id': 'req-g',
    'resource_uuid': 'r-1', 'roles': ['admin'], 'service_roles': ['admin'],
    'user_identity': 'admin tenant-a - - -', 'is_admin_project': True,
    'limit': 10, 'marker': 'm', 'service_catalog': [{'type': 'object'}],
    'trace_info': {'hmac_key': 'SECRET'},
    'trove_notification': {'server_type': 'taskmanager',
                           'request_id': 'req-1'},
}
CREDENTIALS = ('auth_token', 'service_token', 'auth_token_info', 'roles',
               'is_admin', 'is_admin_project', 'service_roles',
               'service_catalog', 'trace_info', 'system_scope')


def packed(ctx):
    return {'_context_%s' % k: v for k, v in ctx.items()}


def test_reverse_context_is_an_allowlist(setup):
    out = rev(setup, {'bridge': 1, 'message': dict(
        packed(CONTROLLER_CONTEXT), method='heartbeat', args={},
        _context_project_id='tenant-b', _context_tenant='tenant-b',
        _context_project='tenant-b')})
    ctx = envelope.context(envelope.unwrap(json.dumps(out.body)))
    assert ctx == {'project_id': 'tenant-a', 'tenant': 'tenant-a',
                   'project': 'tenant-a', 'is_admin': False, 'roles': [],
                   'is_admin_project': False, 'request_id': 'req-1',
                   'global_request_id': 'req-g'}


def test_forward_context_is_an_allowlist(setup):
    out = fwd(setup, oslo_body(method='prepare', args={},
                               **packed(CONTROLLER_CONTEXT)))
    ctx = envelope.context(out.message['body']['message'])
    for key in CREDENTIALS:
        assert key not in ctx
    for key in ('project_id', 'request_id', 'user', 'trove_notification',
                'limit', 'marker', 'resource_uuid'):
        assert ctx[key] == CONTROLLER_CONTEXT[key]


ROUTES = confutil.ROUTES + '''
[route:keys-fwd]
direction = to_zaqar
exchange = trove
tenant = context:project_id
context_keys = project_id, auth_token
[route:keys-rev]
direction = to_amqp
exchange = trove
zaqar_queue = q
tenants = tenant-a
allowed_methods = heartbeat
context_keys = user_id
max_depth = 8
max_call_timeout = 30
'''


@pytest.fixture
def setup(tmp_path):
    conf, routes = confutil.load(tmp_path, ROUTES, routes=(
        'fwd, raw, rev, shared-fwd, shared-rev, keys-fwd, keys-rev'))
    return conf, {r.name: r for r in routes}


def test_context_keys_option_replaces_the_default(setup):
    out = fwd(setup, oslo_body(method='m', **packed(CONTROLLER_CONTEXT)),
              name='keys-fwd')
    assert envelope.context(out.message['body']['message']) == {
        'project_id': 'tenant-a', 'auth_token': 'gAAAAA-secret'}
    out = rev(setup, {'bridge': 1, 'message': dict(
        packed(CONTROLLER_CONTEXT), method='heartbeat')}, name='keys-rev')
    ctx = envelope.context(envelope.unwrap(json.dumps(out.body)))
    assert ctx['user_id'] == 'admin' and 'request_id' not in ctx


@pytest.mark.parametrize('keys, error', [
    ('request_id, project_id', 'project_id: always set by the bridge'),
    ('roles', 'roles: always set by the bridge'),
    ('_context_request_id', 'without the _context_ prefix'),
])
def test_context_keys_checked_when_route_loads(tmp_path, keys, error):
    with pytest.raises(config.ConfigError, match=error):
        confutil.load(tmp_path, '''
            [route:r1]
            direction = to_amqp
            exchange = trove
            zaqar_queue = q
            tenants = t
            context_keys = %s
            ''' % keys)


def nested(levels):
    value = 'leaf'
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize('as_string', [False, True])
def test_deep_nesting_rejected(setup, as_string):
    message = {'method': 'heartbeat', 'args': {'x': nested(300)}}
    body = {'bridge': 1, 'message': message}
    if as_string:   # opened by the bridge, not by zaqarclient
        body = json.dumps(envelope.wrap(message))
    with pytest.raises(Reject, match='more than max_depth = 32'):
        rev(setup, body)
    message['args']['x'] = nested(20)
    rev(setup, {'bridge': 1, 'message': message})


def test_depth_counts_iteratively():
    assert bounds.depth(nested(100000)) == 100000
    assert bounds.depth({'a': [1, {'b': []}]}) == 4
    assert bounds.depth('x') == 0


@pytest.mark.parametrize('value, expect', [
    (None, None), (0, 0), (30, 30), (12.5, 12.5), (1e12, 30), (31, 30)])
def test_timeout_clamped(setup, value, expect):
    out = rev(setup, {'bridge': 1, 'message': {
        'method': 'heartbeat', '_timeout': value}}, name='keys-rev')
    assert envelope.unwrap(json.dumps(out.body))['_timeout'] == expect


@pytest.mark.parametrize('value', [
    float('inf'), float('nan'), -1, '30', True, [30], {'s': 1}])
def test_bad_timeout_rejected(setup, value):
    with pytest.raises(Reject, match='_timeout must be'):
        rev(setup, {'bridge': 1, 'message': {
            'method': 'heartbeat', '_timeout': value}})


def published_id(setup, tenant, unique_id):
    out = rev(setup, {'bridge': 1, 'message': {
        'method': 'heartbeat', '_unique_id': unique_id}}, tenant=tenant)
    return envelope.unwrap(json.dumps(out.body))['_unique_id']


def test_unique_id_is_per_tenant_and_stable(setup):
    a = published_id(setup, 'tenant-a', 'u1')
    assert len(a) == 32 and int(a, 16) >= 0
    assert a == published_id(setup, 'tenant-a', 'u1')      # redelivery
    assert a != published_id(setup, 'tenant-b', 'u1')      # other tenant
    assert a != published_id(setup, 'tenant-a', 'u2')
    assert a != 'u1'
    # No two (tenant, id) pairs spell the same input.
    assert bounds.unique_id('a', 'bc') != bounds.unique_id('ab', 'c')
    with pytest.raises(Reject, match='_unique_id must be a string'):
        published_id(setup, 'tenant-a', 7)
