"""The zaqar:// driver's transport URL, options and Zaqar client set-up."""

import json
import socket
import time

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from oslo_config import cfg
import oslo_messaging
import pytest
from zaqarclient.transport import errors as zerrors

from bridge.drivers.zaqar import driver as zdriver
from bridge.drivers.zaqar import options as zaqar_options
from bridge.drivers.zaqar import push_url


def driver(url, **opts):
    conf = cfg.ConfigOpts()
    conf([], project='test')
    zaqar_options.register_opts(conf, oslo_messaging.TransportURL.parse(
        conf, 'zaqar://h/'))
    for name, value in opts.items():
        conf.set_override(name, value, group=zaqar_options.GROUP)
    return zdriver.ZaqarDriver(
        conf, oslo_messaging.TransportURL.parse(conf, url))


def auth(drv):
    return drv.zaqar.client('q').auth_opts


def test_entry_point_loads_the_driver():
    conf = cfg.ConfigOpts()
    conf([], project='test')
    transport = oslo_messaging.get_rpc_transport(
        conf, url='zaqar://127.0.0.1:8888/?project_id=p1')
    try:
        assert isinstance(transport._driver, zdriver.ZaqarDriver)
    finally:
        transport.cleanup()


def test_noauth_url():
    drv = driver('zaqar://zq.example.org:8889/?project_id=tenant-a')
    assert drv.zaqar.client('q').api_url == 'http://zq.example.org:8889'
    assert auth(drv) == {'backend': 'noauth',
                         'options': {'os_project_id': 'tenant-a'}}
    assert drv.zaqar.client('q').session is None


def test_default_port_scheme_and_path():
    drv = driver('zaqar://zq.example.org/messaging?project_id=p',
                 url_scheme='https')
    assert drv.zaqar.client('q').api_url == 'https://zq.example.org:8888/messaging'


def test_ipv6_host():
    drv = driver('zaqar://[::1]:8891/?project_id=p')
    assert drv.zaqar.client('q').api_url == 'http://[::1]:8891'


def test_query_overrides_options():
    drv = driver('zaqar://h:1/?project_id=from-url&poll_interval_max=2.5'
                 '&claim_ttl=120', project_id='from-file',
                 poll_interval_max=9.0)
    assert drv.opts.project_id == 'from-url'
    assert drv.opts.poll_interval_max == 2.5
    assert drv.opts.claim_ttl == 120
    assert drv.opts.message_ttl == 3600  # untouched default


def test_options_from_the_group():
    drv = driver('zaqar://h:1/', project_id='from-file', fanout_ttl=90)
    assert auth(drv)['options']['os_project_id'] == 'from-file'
    assert drv.opts.fanout_ttl == 90


@pytest.mark.parametrize('query', [
    'project_id=p&no_such_option=1',   # unknown option
    'project_id=p&claim_ttl=30',       # Zaqar minimum is 60
    'project_id=p&message_ttl=10',
    'project_id=p&auth_strategy=basic',
    'project_id=p&reply_queue_prefix=a.b',
])
def test_bad_query_is_refused(query):
    with pytest.raises((cfg.NoSuchOptError, ValueError)):
        driver('zaqar://h:1/?' + query)


def test_noauth_needs_a_project():
    with pytest.raises(oslo_messaging.InvalidTransportURL):
        driver('zaqar://h:1/')


def test_url_needs_a_host():
    with pytest.raises(oslo_messaging.InvalidTransportURL):
        driver('zaqar:///?project_id=p')


def test_keystone_session_built_once_from_url_credentials():
    drv = driver('zaqar://user-a:pw-a@h:1/?auth_strategy=keystone'
                 '&project_name=tenant-a',
                 auth_url='https://ks.example.org/v3',
                 username='file-user', password='file-pw')
    client = drv.zaqar.client('q')
    assert auth(drv) == {'backend': 'keystone', 'options': {}}
    assert isinstance(client.session, ks_session.Session)
    plugin = client.session.auth
    assert plugin.auth_url == 'https://ks.example.org/v3'
    method = plugin.auth_methods[0]
    assert (method.username, method.password) == ('user-a', 'pw-a')
    assert method.user_domain_name == 'Default'
    assert plugin.project_name == 'tenant-a'


def test_keystone_token_requests_time_out():
    # A Keystone that takes connections and never answers must not hang
    # the driver's token requests (HTTP to Zaqar and the push socket's).
    with socket.socket() as keystone:
        keystone.bind(('127.0.0.1', 0))
        keystone.listen(8)
        drv = driver('zaqar://user-a:pw-a@h:1/?auth_strategy=keystone'
                     '&project_name=tenant-a', request_timeout=0.5,
                     auth_url='http://127.0.0.1:%d/v3'
                     % keystone.getsockname()[1])
        session = drv.zaqar.client('q').session
        assert session.timeout == 0.5
        started = time.monotonic()
        with pytest.raises(ks_exc.ConnectTimeout):
            session.get_token()
        assert time.monotonic() - started < 5


def test_keystone_credentials_from_the_group():
    drv = driver('zaqar://h:1/', auth_strategy='keystone',
                 auth_url='http://ks/v3', username='u', password='p',
                 project_id='0123abcd')
    method = drv.zaqar.client('q').session.auth.auth_methods[0]
    assert (method.username, method.password) == ('u', 'p')
    assert drv.zaqar.client('q').session.auth.project_id == '0123abcd'


def test_keystone_needs_credentials():
    with pytest.raises(oslo_messaging.InvalidTransportURL):
        driver('zaqar://h:1/?auth_strategy=keystone&project_name=x')


def test_signed_url():
    drv = driver('zaqar://h:1/?auth_strategy=signed_url&project_id=p',
                 signed_url_signature='sig', signed_url_expires='2030-01-01',
                 signed_url_paths=['/v2/queues/q/messages',
                                   '/v2/queues/q/claims'],
                 signed_url_methods=['GET', 'POST'])
    assert auth(drv) == {'backend': 'signed-url', 'options': {
        'os_project_id': 'p', 'signature': 'sig', 'expires': '2030-01-01',
        'paths': ['/v2/queues/q/messages', '/v2/queues/q/claims'],
        'methods': ['GET', 'POST']}}


def test_signed_url_needs_its_fields():
    with pytest.raises(oslo_messaging.InvalidTransportURL):
        driver('zaqar://h:1/?auth_strategy=signed_url&project_id=p',
               signed_url_signature='sig')


def signed(queue, project='p'):
    return {'signature': 'sig-' + queue, 'expires': '2030-01-01T00:00:00',
            'paths': ['/v2/queues/%s/messages' % queue,
                      '/v2/queues/%s/claims' % queue],
            'methods': ['GET', 'POST', 'DELETE'], 'project': project,
            'queue': queue, 'url': 'http://h:1'}


def test_signed_url_file_one_client_per_queue(tmp_path):
    path = tmp_path / 'urls.json'
    path.write_text(json.dumps([signed('t-guestagent_1'),
                                signed('t-replies')]))
    drv = driver('zaqar://h:1/?auth_strategy=signed_url&project_id=p',
                 signed_url_file=str(path))
    options = drv.zaqar.client('t-replies').auth_opts['options']
    assert options['signature'] == 'sig-t-replies'
    assert options['os_project_id'] == 'p'
    assert drv.zaqar.covers('t-guestagent_1')
    assert not drv.zaqar.covers('t-other')
    with pytest.raises(zerrors.ForbiddenError,
                       match='no signed URL for queue t-other'):
        drv.zaqar.client('t-other')


def test_signed_url_file_names_the_project(tmp_path):
    path = tmp_path / 'urls.json'
    path.write_text(json.dumps(signed('q', project='bridge-project')))
    drv = driver('zaqar://h:1/?auth_strategy=signed_url',
                 signed_url_file=str(path))
    assert auth(drv)['options']['os_project_id'] == 'bridge-project'
    entry = signed('q')
    del entry['project']
    path.write_text(json.dumps(entry))
    with pytest.raises(oslo_messaging.InvalidTransportURL,
                       match='entry 1: no project \\(set project_id\\)'):
        driver('zaqar://h:1/?auth_strategy=signed_url',
               signed_url_file=str(path))


@pytest.mark.parametrize('content, error', [
    (None, 'signed_url_file %(path)s: No such file'),
    ('{"signature": ', 'signed_url_file %(path)s: not JSON'),
    ('[1]', 'signed_url_file %(path)s entry 1: expected an object'),
    ('[{"signature": "s", "expires": "e", "paths": ["/v2/queues/q/x"]}]',
     'signed_url_file %(path)s entry 1: missing methods'),
    ('{"signature": "s", "expires": "e", "methods": ["GET"], '
     '"paths": ["/v2/queues/a/messages", "/v2/queues/b/messages"]}',
     "signed_url_file %(path)s entry 1: its paths must name exactly one "
     "queue, got ['a', 'b']"),
    ('{"signature": "s", "expires": "e", "methods": ["GET"], '
     '"paths": ["/v1/queues/a"]}', "path '/v1/queues/a' is not a Zaqar"),
])
def test_signed_url_file_errors(tmp_path, content, error):
    path = tmp_path / 'urls.json'
    if content is not None:
        path.write_text(content)
    with pytest.raises(oslo_messaging.InvalidTransportURL) as exc:
        driver('zaqar://h:1/?auth_strategy=signed_url&project_id=p',
               signed_url_file=str(path))
    assert error % {'path': path} in str(exc.value)


def test_queue_prefix_names_every_derived_queue():
    drv = driver('zaqar://h:1/?project_id=p&queue_prefix=t1-')
    target = oslo_messaging.Target(topic='guestagent.42', server='h')
    assert drv._queue_of(target, 'guestagent.42') == 't1-guestagent_42'
    assert drv._queue_of(target, 'guestagent.42', fanout=True) == \
        't1-guestagent_42_fanout'
    name = drv._reply_queue_name()
    assert name.startswith('t1-reply_') and len(name) == 41


def test_reply_queue_name_fits_zaqar_with_a_long_prefix():
    prefix = 'f' * 32 + '-'
    drv = driver('zaqar://h:1/?project_id=p&queue_prefix=' + prefix)
    name = drv._reply_queue_name()
    assert name.startswith(prefix + 'reply_') and len(name) == 64


def test_fixed_reply_queue():
    drv = driver('zaqar://h:1/?project_id=p&reply_queue=t1-reply_vm7')
    assert drv._reply_queue_name() == 't1-reply_vm7'


@pytest.mark.parametrize('opts, verify, cert', [
    ({}, True, None),
    ({'insecure': True}, False, None),
    ({'ssl_ca_file': '/etc/ssl/zaqar-ca.pem'}, True,
     '/etc/ssl/zaqar-ca.pem'),
])
def test_tls_settings_reach_every_request(opts, verify, cert):
    drv = driver('zaqar://h:1/?project_id=p', **opts)
    req, _ = drv.zaqar.client('q')._request_and_transport()
    assert (req.verify, req.cert) == (verify, cert)
    assert req.headers['X-Project-Id'] == 'p'
    assert req.headers['Client-ID'] == drv.zaqar.client('q').client_uuid


def test_one_transport_for_all_requests():
    drv = driver('zaqar://h:1/?project_id=p')
    _, t1 = drv.zaqar.client('q')._request_and_transport()
    _, t2 = drv.zaqar.client('q')._request_and_transport()
    assert t1 is t2


def test_list_opts_documents_every_option():
    [(group, opts)] = zaqar_options.list_opts()
    assert group == 'oslo_messaging_zaqar'
    names = {o.name for o in opts}
    assert {'url_scheme', 'project_id', 'auth_strategy', 'auth_url',
            'username', 'password', 'project_name', 'user_domain_name',
            'project_domain_name', 'signed_url_signature',
            'signed_url_expires', 'signed_url_paths', 'signed_url_methods',
            'reply_queue_prefix', 'reply_queue', 'queue_prefix',
            'signed_url_file', 'claim_ttl', 'poll_interval_min',
            'poll_interval_max', 'message_ttl', 'fanout_ttl'} <= names
    assert all(o.help for o in opts)


def test_project_in_the_user_part_needs_no_query():
    drv = driver('zaqar://tenant-a@zq.example.org:8889/')
    assert drv.auth_strategy == 'noauth'
    assert auth(drv) == {'backend': 'noauth',
                         'options': {'os_project_id': 'tenant-a'}}
    # The user part wins over the file's project_id.
    drv = driver('zaqar://tenant-a@h:1/', project_id='from-file')
    assert auth(drv)['options']['os_project_id'] == 'tenant-a'


def test_a_password_in_the_url_means_keystone():
    drv = driver('zaqar://alice:s3cret@h:1/', auth_url='http://ks/v3',
                 project_name='tenant-a')
    assert drv.auth_strategy == 'keystone'
    method = drv.zaqar.client('q').session.auth.auth_methods[0]
    assert (method.username, method.password) == ('alice', 's3cret')
    # Without the Keystone options of the group it says what is missing.
    with pytest.raises(oslo_messaging.InvalidTransportURL,
                       match='needs auth_url'):
        driver('zaqar://alice:s3cret@h:1/')


def test_explicit_noauth_ignores_a_url_password(caplog):
    drv = driver('zaqar://tenant-a:pw@h:1/', auth_strategy='noauth')
    assert auth(drv)['options']['os_project_id'] == 'tenant-a'
    assert 'ignores the password of its transport URL' in caplog.text


def test_signed_urls_take_the_project_of_the_user_part(tmp_path):
    path = tmp_path / 'urls.json'
    entry = signed('q')
    del entry['project']
    path.write_text(json.dumps(entry))
    drv = driver('zaqar://from-url@h:1/?auth_strategy=signed_url',
                 signed_url_file=str(path))
    assert auth(drv)['options']['os_project_id'] == 'from-url'


@pytest.mark.parametrize('opts, size', [
    ({}, 64 + 16),                      # executor_thread_pool_size + 16
    ({'http_pool_size': 7}, 7),
])
def test_http_pool_fits_the_executor(opts, size):
    drv = driver('zaqar://p@h:1/', **opts)
    _, trans = drv.zaqar.client('q')._request_and_transport()
    adapter = trans.client.session.get_adapter('http://h:1/')
    assert adapter._pool_maxsize == size


@pytest.mark.parametrize('url, opts, expected', [
    # auto (the default): the Zaqar host on the websocket port, 9000.
    ('zaqar://p@zaqar.example.org:8888/', {},
     ('ws://zaqar.example.org:9000', True, None)),
    ('zaqar://p@zaqar.example.org/', {'url_scheme': 'https'},
     ('wss://zaqar.example.org:9000', True, None)),
    ('zaqar://p@[::1]:8888/', {}, ('ws://[::1]:9000', True, None)),
    ('zaqar://p@h/', {'websocket_url': 'ws://elsewhere:7000'},
     ('ws://elsewhere:7000', False, None)),
    ('zaqar://p@h/', {'websocket_url': ''}, (None, False, None)),
    # Keystone: the same (push_auth may find one in the catalog).
    ('zaqar://u:pw@h/', {'auth_url': 'http://k/v3', 'project_id': 'x'},
     ('ws://h:9000', True, None)),
    ('zaqar://u:pw@h/', {'auth_url': 'http://k/v3', 'project_id': 'x',
                         'websocket_url': 'ws://h:9001'},
     ('ws://h:9001', False, None)),
    # Signed URLs: auto quietly polls; an explicit URL says why not.
    ('zaqar://h/?auth_strategy=signed_url&project_id=p',
     {'signed_url_signature': 's', 'signed_url_expires': 'e',
      'signed_url_paths': ['/v2/queues/q/messages'],
      'signed_url_methods': ['GET']},
     (None, True, None)),
    ('zaqar://h/?auth_strategy=signed_url&project_id=p',
     {'signed_url_signature': 's', 'signed_url_expires': 'e',
      'signed_url_paths': ['/v2/queues/q/messages'],
      'signed_url_methods': ['GET'], 'websocket_url': 'ws://h:9000'},
     (None, False, push_url.SIGNED_URL)),
])
def test_websocket_url_discovery(url, opts, expected):
    drv = driver(url, **opts)
    assert push_url.websocket_url(drv.opts, drv._url,
                                  drv.auth_strategy) == expected
