"""amqp-zaqar-bridge-manage: bad usage is one line and exit code 2.

Nothing here reaches a server: each case is refused before that, or the
servers are unreachable on purpose (port 1).  What is about the command
line runs the scripts as installed.
"""

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from bridge.cmd import manage

CONFIG = '''
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:1/
routes = guests
[rpc]
reply_secret = s
[zaqar]
url = http://127.0.0.1:1
[route:guests]
direction = to_zaqar
exchange = trove
tenant = context:project_id
'''


@pytest.fixture
def run(tmp_path, capsys):
    path = tmp_path / 'bridge.conf'
    path.write_text(textwrap.dedent(CONFIG))

    def run(*args):
        try:
            code = manage.main(['--config-file', str(path)] + list(args))
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err
    return run


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_purge_needs_yes(run):
    code, out, err = run('dead-letters', 'purge')
    assert code == 2 and out == ''
    assert one_line(err) == (
        'amqp-zaqar-bridge-manage: dead-letters purge deletes dead letters '
        'for good: add --yes (dead-letters list shows them first)')


@pytest.mark.parametrize('args, message', [
    (['dead-letters'], 'dead-letters: error: the following arguments are '
                       'required: ACTION'),
    (['dead-letters', 'list', '--limit', '0'],
     "dead-letters list: error: argument --limit: '0' is not a positive "
     "integer"),
    (['dead-letters', 'show'], 'the following arguments are required: ID'),
    (['dead-letters', 'list', '--format', 'xml'], "invalid choice: 'xml'"),
    (['signed-url', '--queue', 'q'], 'required: --tenant'),
    (['signed-url', '--tenant', 't', '--queue', 'q', '--methods', 'GET,FOO'],
     "--methods 'GET,FOO': use a comma-separated list of GET, HEAD, POST"),
    (['signed-url', '--tenant', 't', '--queue', 'q', '--paths', 'queues'],
     "--paths 'queues': use a comma-separated list of messages, claims"),
    (['signed-url', '--tenant', 't', '--queue', 'a.b'],
     "--queue 'a.b' is not a Zaqar queue name ([A-Za-z0-9_-], at most 64 "
     "characters); the queue of the topic 'a.b' is a_b"),
    (['signed-url', '--tenant', 't', '--queue', 'guestagent.' + 'u' * 80],
     "the queue of the topic 'guestagent.%s' is guestagent_%s-"
     % ('u' * 80, 'u' * 36)),
    (['signed-url', '--tenant', 't', '--queue', 'q', '--expires-in', '0'],
     '--expires-in 0: must be at least 1 second'),
])
def test_bad_usage(run, args, message):
    code, out, err = run(*args)
    assert code == 2
    assert message in one_line(err)
    assert one_line(err).startswith('amqp-zaqar-bridge-manage')


def test_unreachable_rabbitmq_is_one_line_and_1(run):
    code, out, err = run('dead-letters', 'list')
    assert code == 1
    assert one_line(err).startswith(
        'amqp-zaqar-bridge-manage: RabbitMQ at '
        'rabbit://guest:***@127.0.0.1:1/ is unreachable: ')


def test_unreachable_zaqar_is_one_line_and_1(run):
    code, out, err = run('signed-url', '--tenant', 't', '--queue', 'q')
    assert code == 1
    assert one_line(err).startswith(
        'amqp-zaqar-bridge-manage: Zaqar at http://127.0.0.1:1 is '
        'unreachable: ')


def installed(name, *args):
    """Run the console script ``name`` as installed beside this Python."""
    script = pathlib.Path(sys.executable).parent / name
    return subprocess.run([str(script)] + list(args), capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def config(tmp_path):
    def write(extra=''):
        path = tmp_path / 'bridge.conf'
        path.write_text(textwrap.dedent(CONFIG) + textwrap.dedent(extra))
        return str(path)
    return write


def test_check_config_json_is_one_document(config):
    result = installed('amqp-zaqar-bridge-manage', '--config-file', config(),
                       'check-config', '--format', 'json')
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert [r['route'] for r in document['routes']] == ['guests']
    assert [(c['side'], c['status'].split(':')[0])
            for c in document['connections']] == [
        ('RabbitMQ', 'unreachable'), ('Zaqar', 'unreachable')]
    assert len(document['problems']) == 2
    assert document['problems'][0].startswith(
        'RabbitMQ at rabbit://guest:***@127.0.0.1:1/ is unreachable: ')
    # the same lines, for a person, on stderr
    assert result.stderr.splitlines() == [
        'amqp-zaqar-bridge-manage: %s' % p for p in document['problems']]
    # routes --format json stays a list
    routes = installed('amqp-zaqar-bridge-manage', '--config-file', config(),
                       'routes', '--format', 'json')
    assert routes.returncode == 0, routes.stderr
    assert json.loads(routes.stdout) == document['routes']


@pytest.mark.parametrize('order', [
    ['--config-file', '{file}', 'routes', '--format', 'json'],
    ['routes', '--config-file', '{file}', '--format', 'json'],
    ['routes', '--format=json', '--config-file={file}'],
    ['routes', '--format', 'json', '--config-dir', '{dir}'],
    ['--config-dir={dir}', 'routes', '--format', 'json'],
])
def test_config_options_before_or_after_the_command(config, order):
    path = config()
    args = [a.format(file=path, dir=pathlib.Path(path).parent)
            for a in order]
    result = installed('amqp-zaqar-bridge-manage', *args)
    assert result.returncode == 0, result.stderr
    assert [r['route'] for r in json.loads(result.stdout)] == ['guests']


def test_unknown_argument_after_the_command_is_still_refused(config):
    result = installed('amqp-zaqar-bridge-manage', 'routes',
                       '--config-file', config(), '--colour')
    assert result.returncode == 2
    assert 'unrecognized arguments: --colour' in result.stderr


@pytest.mark.parametrize('script, words', [
    ('amqp-zaqar-bridge', 'Bridge selected RabbitMQ (oslo.messaging) '
                          'traffic to per-tenant Zaqar queues and back'),
    ('amqp-zaqar-bridge-manage', "The operator's command line of "
                                 "amqp-zaqar-bridge"),
])
def test_help_says_what_the_program_does(script, words):
    result = installed(script, '--help')
    assert result.returncode == 0, result.stderr
    assert words in ' '.join(result.stdout.split())


@pytest.mark.parametrize('script, args', [
    ('amqp-zaqar-bridge', []),
    ('amqp-zaqar-bridge-manage', ['check-config']),
])
def test_unknown_option_is_refused_in_one_line(config, script, args):
    # The same file without the misspelling passes the checks (check-config
    # then only fails on the unreachable servers).
    fine = installed('amqp-zaqar-bridge-manage', '--config-file', config(),
                     'check-config')
    assert fine.returncode == 1 and 'Routes:' in fine.stdout, fine.stderr
    path = config('allowed_method = heartbeat\n')
    result = installed(script, '--config-file', path, *args)
    assert result.returncode == 2
    assert result.stdout == ''
    assert one_line(result.stderr) == (
        '%s: [route:guests] in %s: unknown option allowed_method (did you '
        'mean allowed_methods?)' % (script, path))


@pytest.mark.parametrize('script, args', [
    ('amqp-zaqar-bridge', []),
    ('amqp-zaqar-bridge-manage', ['routes']),
])
def test_unknown_tenant_rule_is_only_one_line(config, script, args):
    path = pathlib.Path(config())
    path.write_text(path.read_text().replace('tenant = context:project_id',
                                             'tenant = nope:1'))
    result = installed(script, '--config-file', str(path), *args)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "%s: route 'guests' option 'tenant': unknown tenant rule kind 'nope' "
        "(no entry point in amqp_zaqar_bridge.tenant_resolvers)" % script)
