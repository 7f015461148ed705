import pytest

from bridge import service
from tests.unit import confutil

FORWARD = '''
[route:r1]
direction = to_zaqar
exchange = trove
binding_keys = guestagent.*
tenant = context:project_id
'''


def test_forward_route_defaults(tmp_path):
    conf, routes = confutil.load(tmp_path, FORWARD)
    (route,) = routes
    assert route.amqp_queue == 'amqp-zaqar-bridge.r1'
    assert route.exchange_auto_delete is False
    assert route.zaqar_queue == '{routing_key}'
    assert route.tenant_resolver is not None


@pytest.mark.parametrize('text, message', [
    ('', "route 'r1': listed in [DEFAULT] routes but the config has no "
         "[route:r1] section"),
    ('[route:r1]\ndirection = sideways\nexchange = x\n',
     "route 'r1' option 'direction': bad value"),
    ('[route:r1]\nexchange = x\n', "route 'r1' option 'direction': is "
                                   "required"),
    ('[route:r1]\ndirection = to_zaqar\nexchange = x\n',
     "route 'r1' option 'tenant': is required"),
    ('[route:r1]\ndirection = to_zaqar\nexchange = x\ntenant = nope:1\n',
     "route 'r1' option 'tenant': unknown tenant rule kind 'nope'"),
    ('[route:r1]\ndirection = to_zaqar\nexchange = x\ntenant = '
     'routing_key:abc\n', "route 'r1' option 'tenant': routing_key: 'abc' "
                          "has no group"),
    ('[route:r1]\ndirection = to_zaqar\nexchange = x\ntenant = static:p\n'
     'zaqar_queue = {nope}\n', "route 'r1' option 'zaqar_queue': unknown "
                               "field(s) {nope}"),
    ('[route:r1]\ndirection = to_zaqar\nexchange = x\ntenant = static:p\n'
     'prefetch = lots\n', "route 'r1' option 'prefetch': bad value"),
    ('[route:r1]\ndirection = to_amqp\nexchange = x\nzaqar_queue = q\n',
     "route 'r1' option 'tenants': a to_amqp route needs at least one"),
    ('[route:r1]\ndirection = to_amqp\nexchange = x\nzaqar_queue = q\n'
     'tenant_discovery = trusts\n', "route 'r1' option 'tenant_discovery': "
     "trusts needs [zaqar] auth_strategy = keystone"),
    ('[route:r1]\ndirection = to_amqp\nexchange = x\nzaqar_queue = q-{tenant}'
     '\ntenants = a\nallowed_methods = m\n',
     "route 'r1' option 'routing_key': is required"),
    ('[route:r1]\ndirection = to_zaqar\nexchange = x\ntenant = static:p\n'
     'reply_queue = r-{server}\n', "route 'r1' option 'reply_queue': unknown "
                                  "field(s) {server}"),
    ('[route:r1]\ndirection = to_zaqar\nexchange = x\ntenant = static:p\n'
     'reply_queue =\n', "route 'r1' option 'reply_queue': empty queue "
                        "name"),
    ('[route:r1]\ndirection = to_amqp\nexchange = x\nzaqar_queue = q\n'
     'tenants = a\nguest_reply_queue = {tenant}.reply\n',
     "route 'r1' option 'guest_reply_queue': pattern '{tenant}.reply': only "
     "letters"),
    ('[route:r1]\ndirection = to_amqp\nexchange = x\nzaqar_queue = q\n'
     'tenants = a\nguest_reply_queue = {tenant}-{route}\n',
     "route 'r1' option 'guest_reply_queue': pattern '{tenant}-{route}'"),
])
def test_route_errors_name_route_and_option(tmp_path, text, message):
    with pytest.raises(service.ConfigError) as err:
        confutil.load(tmp_path, text)
    assert str(err.value).startswith(message), str(err.value)
    assert '\n' not in str(err.value)


@pytest.mark.parametrize('url, message', [
    ('kafka://h:9092/', "scheme 'kafka' is not supported"),
    ('not a url', 'transport_url is not valid'),
    ('rabbit://', 'names no host'),
])
def test_bad_transport_url(tmp_path, url, message):
    with pytest.raises(service.ConfigError) as err:
        confutil.load(tmp_path, FORWARD + '[DEFAULT]\ntransport_url = %s\n'
                      % url)
    assert str(err.value).startswith('[DEFAULT] transport_url:')
    assert message in str(err.value)


def test_bad_zaqar_url(tmp_path):
    with pytest.raises(service.ConfigError, match=r'^\[zaqar\] url: bad'):
        confutil.load(tmp_path, FORWARD + '[zaqar]\nurl = ftp://x\n')


def test_reply_secret_required_for_oslo_routes(tmp_path):
    with pytest.raises(service.ConfigError, match='reply_secret'):
        confutil.load(tmp_path, '[DEFAULT]\nroutes = r1\n' + FORWARD,
                      base=False)


@pytest.mark.parametrize('generator, sample', [
    ('amqp-zaqar-bridge-config-generator.conf', 'bridge.conf.sample'),
    ('guest-config-generator.conf', 'oslo_messaging_zaqar.conf.sample'),
])
def test_sample_config_is_current(tmp_path, generator, sample):
    """The committed samples must be what oslo-config-generator makes."""
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parents[2]
    out = tmp_path / 'sample'
    subprocess.run([sys.executable, '-m', 'oslo_config.generator',
                    '--config-file', str(root / 'etc' / generator),
                    '--output-file', str(out)], check=True, cwd=root)
    committed = (root / 'etc' / sample).read_text()
    assert out.read_text() == committed, (
        'etc/%s is stale: run "tox -e genconfig"' % sample)
