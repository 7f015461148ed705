"""amqp-zaqar-bridge-manage: bad usage is one line and exit code 2.

Nothing here reaches a server: each case is refused before that.
"""

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
