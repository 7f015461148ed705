import pytest

from bridge.daemon import config
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
    with pytest.raises(config.ConfigError) as err:
        confutil.load(tmp_path, text)
    assert str(err.value).startswith(message), str(err.value)
    assert '\n' not in str(err.value)


@pytest.mark.parametrize('url, message', [
    ('kafka://h:9092/', "scheme 'kafka' is not supported"),
    ('not a url', 'transport_url is not valid'),
    ('rabbit://', 'names no host'),
])
def test_bad_transport_url(tmp_path, url, message):
    with pytest.raises(config.ConfigError) as err:
        confutil.load(tmp_path, FORWARD + '[DEFAULT]\ntransport_url = %s\n'
                      % url)
    assert str(err.value).startswith('[DEFAULT] transport_url:')
    assert message in str(err.value)


def test_bad_zaqar_url(tmp_path):
    with pytest.raises(config.ConfigError, match=r'^\[zaqar\] url: bad'):
        confutil.load(tmp_path, FORWARD + '[zaqar]\nurl = ftp://x\n')


def test_reply_secret_required_for_oslo_routes(tmp_path):
    with pytest.raises(config.ConfigError, match='reply_secret'):
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


def test_reply_secret_required_for_a_doorbell(tmp_path):
    route = ('[route:r1]\ndirection = to_amqp\nenvelope = raw\nexchange = x\n'
             'zaqar_queue = q\ntenants = t1\ndoorbell_port = 8899\n')
    with pytest.raises(config.ConfigError, match=(
            "^route 'r1' option 'doorbell_port': \\[rpc\\] reply_secret is "
            "required with a doorbell")):
        confutil.load(tmp_path, '[DEFAULT]\nroutes = r1\n' + route,
                      base=False)
    confutil.load(tmp_path, route)   # with a secret: fine


ROUTE = "[route:r1]\ndirection = to_zaqar\nexchange = x\ntenant = static:p\n"


@pytest.mark.parametrize('text, message', [
    # StrOpt with choices
    ('[route:r1]\ndirection = sideways\nexchange = x\n',
     "route 'r1' option 'direction': bad value 'sideways': must be one of "
     "to_zaqar, to_amqp"),
    # IntOpt min/max
    (ROUTE + 'workers = 100\n', "route 'r1' option 'workers': bad value "
                                "'100': must be an integer from 1 to 64"),
    (ROUTE + 'prefetch = lots\n', "route 'r1' option 'prefetch': bad value "
                                  "'lots': must be an integer of at least 1"),
    # FloatOpt min
    (ROUTE + 'batch_timeout = -1\n', "route 'r1' option 'batch_timeout': bad "
                                     "value '-1': must be a number of at "
                                     "least 0"),
    # BoolOpt
    (ROUTE + 'exchange_durable = maybe\n', "route 'r1' option "
     "'exchange_durable': bad value 'maybe': must be true or false"),
    # PortOpt
    (ROUTE + 'doorbell_port = 70000\n', "route 'r1' option 'doorbell_port': "
     "bad value '70000': must be a port number from 0 to 65535"),
    # URIOpt schemes
    (ROUTE + 'doorbell_url = ftp://h/\n', "route 'r1' option 'doorbell_url': "
     "bad value 'ftp://h/': must be a URL with scheme http or https"),
    # DictOpt
    (ROUTE + 'binding_arguments = x-match\n', "route 'r1' option "
     "'binding_arguments': bad value 'x-match': must be comma-separated "
     "key:value pairs"),
    # the shared sections, through the same helper
    (ROUTE + '[zaqar]\nurl = ftp://x\n', "[zaqar] url: bad value 'ftp://x': "
     "must be a URL with scheme http or https"),
    (ROUTE + '[zaqar]\ninsecure = maybe\n', "[zaqar] insecure: bad value "
     "'maybe': must be true or false"),
    (ROUTE + '[metrics]\nport = 70000\n', "[metrics] port: bad value "
     "'70000': must be a port number from 0 to 65535"),
    (ROUTE + '[amqp]\nheartbeat = -1\n', "[amqp] heartbeat: bad value '-1': "
     "must be an integer of at least 0"),
    # a library's option in the bridge's [DEFAULT] (cotyledon)
    (ROUTE + '[DEFAULT]\ngraceful_shutdown_timeout = soon\n',
     "[DEFAULT] graceful_shutdown_timeout: bad value 'soon': must be an "
     "integer"),
    # oslo.log's command line option set in the file: oslo.config itself
    # would write "argument --debug: Invalid Boolean value" and exit 1
    (ROUTE + '[DEFAULT]\ndebug = ture\n',
     "[DEFAULT] debug: bad value 'ture': must be true or false"),
])
def test_bad_value_says_what_is_allowed(tmp_path, capsys, text, message):
    with pytest.raises(config.ConfigError) as err:
        confutil.load(tmp_path, text)
    assert str(err.value) == message
    assert capsys.readouterr().err == ''    # said once, by the caller
    # none of oslo.config's internals
    assert 'LocationInfo' not in message and 'URIReference' not in message


def test_allowed_describes_every_option_type():
    from oslo_config import cfg

    from bridge import confcheck
    cases = [
        (cfg.StrOpt('a', choices=['x', 'y']), 'one of x, y'),
        (cfg.StrOpt('a', regex='^[a-z]+$', max_length=8),
         'text matching ^[a-z]+$, at most 8 characters'),
        (cfg.IntOpt('a', max=9), 'an integer of at most 9'),
        (cfg.IntOpt('a', choices=[1, 2]), 'one of 1, 2'),
        (cfg.FloatOpt('a', min=0.5, max=2), 'a number from 0.5 to 2'),
        (cfg.PortOpt('a'), 'a port number from 0 to 65535'),
        (cfg.BoolOpt('a'), 'true or false'),
        (cfg.URIOpt('a'), 'a URL'),
        (cfg.ListOpt('a', item_type=cfg.types.Integer(min=1)),
         'a comma-separated list of an integer of at least 1'),
        (cfg.HostAddressOpt('a'), 'an IP address or a host name'),
        (cfg.IPOpt('a'), 'an IP address'),
        (cfg.HostnameOpt('a'), 'a host name'),
    ]
    for opt, text in cases:
        assert confcheck.allowed(opt.type) == text, opt


def test_bad_list_item_is_one_line(tmp_path):
    """A ListOpt whose items are checked (the bridge has none: made here)."""
    from oslo_config import cfg

    from bridge import confcheck
    conf, _ = confutil.load(tmp_path, ROUTE + '[demo]\nports = 1, x\n')
    opt = cfg.ListOpt('ports', item_type=cfg.types.Port())
    conf.register_opt(opt, group='demo')
    with pytest.raises(confcheck.BadValue) as err:
        confcheck.value(conf, 'demo', opt)
    assert str(err.value) == ("bad value '1, x': must be a comma-separated "
                              "list of a port number from 0 to 65535")


@pytest.mark.parametrize('text, message', [
    (ROUTE + 'allowed_method = heartbeat\n',
     "[route:r1] in {path}: unknown option allowed_method (did you mean "
     "allowed_methods?)"),
    (ROUTE + 'colour = blue\nbinding_key = a.*\n',
     "[route:r1] in {path}: unknown options colour, binding_key (did you "
     "mean binding_keys?)"),
    (ROUTE + '[zaqar]\nauth_strategy = keystone\nauth_type = password\n'
     'username = u\npasswrd = p\n',
     "[zaqar] in {path}: unknown option passwrd (did you mean password?)"),
    (ROUTE + '[DEFAULT]\nroute = r1\n',
     "[DEFAULT] in {path}: unknown option route (did you mean routes?)"),
    (ROUTE + '[metrics]\nenable = true\n',
     "[metrics] in {path}: unknown option enable (did you mean enabled?)"),
])
def test_unknown_options_are_refused(tmp_path, text, message):
    with pytest.raises(config.ConfigError) as err:
        confutil.load(tmp_path, text)
    assert str(err.value) == message.format(path=tmp_path / 'bridge.conf')


def test_known_options_of_libraries_and_other_sections_pass(tmp_path):
    """Only truly unknown names are refused: oslo.log's, cotyledon's and
    keystoneauth's options are known, other programs' sections ignored,
    and so are unlisted route sections (they only get a warning)."""
    conf, routes = confutil.load(tmp_path, ROUTE + '''
[DEFAULT]
debug = true
log_date_format = %H:%M:%S
graceful_shutdown_timeout = 30
[zaqar]
auth_strategy = keystone
tenant_access = trusts
auth_type = password
auth_url = http://127.0.0.1:5000/v3
username = bridge
password = secret
user_domain_name = Default
insecure = true
[oslo_messaging_rabbit]
whatever = 1
[route:unused]
misspelt = 1
''')
    assert [r.name for r in routes] == ['r1']
    assert conf.graceful_shutdown_timeout == 30


def test_to_amqp_without_zaqar_queue_is_required_not_a_default(tmp_path):
    reverse = '[route:r1]\ndirection = to_amqp\nexchange = x\ntenants = a\n'
    with pytest.raises(config.ConfigError) as err:
        confutil.load(tmp_path, reverse)
    assert str(err.value).startswith(
        "route 'r1' option 'zaqar_queue': is required for a to_amqp route")
    assert '{routing_key}' not in str(err.value)
    # What the user writes is what is judged: the same route loads with a
    # queue, and a template the direction can't fill is named as written.
    (route,) = confutil.load(tmp_path, reverse + 'zaqar_queue = q\n')[1]
    assert route.zaqar_queue == 'q'
    with pytest.raises(config.ConfigError, match=r'unknown field\(s\) '
                       r'\{routing_key\}'):
        confutil.load(tmp_path, reverse + 'zaqar_queue = {routing_key}\n')
