"""oslo.messaging's own functional suite on zaqar://, and on rabbit://.

``oslo_messaging/tests/functional/test_functional.py`` (Call, Cast and
Notify test cases) is what oslo.messaging asks of every driver; it reads
the transport URLs from ``RPC_TRANSPORT_URL`` and ``NOTIFY_TRANSPORT_URL``
and validates their query against the Kafka driver's options, so the
zaqar:// URL has none: ``zaqar://<project>@host:port/``.  It runs
unmodified, from the source of the installed oslo.messaging version
(tools/setup-env.sh fetches it into .cache/), in a subprocess, with
``-k "not Metrics"`` (the metrics test needs oslo.metrics' socket
server), against the test zaqar-server and, in the same run for
comparison, against the RabbitMQ the tests use.

The suite itself skips ``test_mandatory_call`` and ``test_monitor_long_call``
for any URL that is not rabbit:// (and amqp:// for the second), by the
URL's scheme alone.  zaqar:// supports what they test (``at_least_once``
and call monitoring), so they run once more on zaqar://, with that scheme
gate lifted by tests/functional/oslo_scheme_gate.py and their bodies
unchanged; zaqar:// then passes all 20, as rabbit:// does.
"""

import importlib.metadata
import os
import pathlib
import subprocess
import sys
from xml.etree import ElementTree

import pytest

pytestmark = pytest.mark.functional

ROOT = pathlib.Path(__file__).resolve().parents[2]
VERSION = importlib.metadata.version('oslo.messaging')
SOURCE = ROOT / '.cache' / ('oslo.messaging-%s' % VERSION)
SUITE = 'oslo_messaging/tests/functional/test_functional.py'
SELECTION = 'not Metrics'
TESTS = 20
# Skipped by the suite for every transport but rabbit:// (and amqp://).
RABBIT_ONLY = {'CallTestCase::test_mandatory_call',
               'CallTestCase::test_monitor_long_call'}
# Seconds one run of the suite may take (about 2 minutes here).
RUN_TIMEOUT = 600


@pytest.fixture(scope='module')
def suite():
    path = SOURCE / SUITE
    if not path.is_file():
        why = ('no %s: tools/setup-env.sh fetches the source of the '
               'installed oslo.messaging %s' % (path, VERSION))
        if os.environ.get('CI') == 'true':
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return path


def run_suite(suite, tmp_path, name, url, say, selection=SELECTION,
              plugins=()):
    """Run the selection with both URLs set to ``url``; the outcome of
    each test (``Class::test`` -> passed, failed or skipped)."""
    report = tmp_path / ('%s.xml' % name.split(':')[0].replace(' ', '-'))
    env = dict(os.environ, RPC_TRANSPORT_URL=url, NOTIFY_TRANSPORT_URL=url,
               PYTHONPATH=str(ROOT))
    # From the source directory, so that oslo_messaging (the installed
    # version, see SOURCE) and its tests come from one tree.
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         *('-p%s' % plugin for plugin in plugins),
         '-k', selection, '--junitxml', str(report), SUITE],
        cwd=suite.parents[3], env=env, capture_output=True, text=True,
        timeout=RUN_TIMEOUT)
    if not report.exists():
        pytest.fail('oslo.messaging suite on %s did not run (exit %d):\n%s'
                    % (name, proc.returncode, proc.stdout[-3000:]
                       + proc.stderr[-3000:]))
    outcomes = {}
    for case in ElementTree.parse(report).iter('testcase'):
        test = '%s::%s' % (case.get('classname').rsplit('.', 1)[-1],
                           case.get('name'))
        if case.find('skipped') is not None:
            outcomes[test] = 'skipped'
        elif case.find('failure') is not None or \
                case.find('error') is not None:
            outcomes[test] = 'failed'
        else:
            outcomes[test] = 'passed'
    counts = {o: sum(1 for v in outcomes.values() if v == o)
              for o in ('passed', 'failed', 'skipped')}
    say('oslo.messaging %s functional suite (-k "%s") on %s: %d passed, '
          '%d failed, %d skipped%s' % (
              VERSION, selection, name, counts['passed'], counts['failed'],
              counts['skipped'], ''.join(
                  '\n  %s %s' % (o.upper(), t)
                  for t, o in sorted(outcomes.items()) if o != 'passed')))
    if counts['failed']:
        say(proc.stdout[-20000:])
    return outcomes


def test_oslo_messaging_functional_suite(suite, tmp_path, zaqar, rabbit,
                                         unique_name, capsys):
    def say(text):
        with capsys.disabled():  # the results belong in the test report
            print('\n' + text)
    host = zaqar.url.split('://', 1)[1]
    zaqar_url = 'zaqar://%s@%s/' % (unique_name('oslo-suite'), host)
    on_zaqar = run_suite(suite, tmp_path, 'zaqar://', zaqar_url, say)
    on_rabbit = run_suite(suite, tmp_path, 'rabbit://', rabbit.url, say)

    assert len(on_rabbit) == len(on_zaqar) == TESTS
    assert set(on_rabbit.values()) == {'passed'}
    failed = sorted(t for t, o in on_zaqar.items() if o == 'failed')
    assert failed == []
    assert {t for t, o in on_zaqar.items() if o == 'skipped'} == RABBIT_ONLY
    ungated = run_suite(
        suite, tmp_path, 'zaqar:// (scheme gate lifted)', zaqar_url, say,
        selection=' or '.join(t.split('::')[1] for t in RABBIT_ONLY),
        plugins=['tests.functional.oslo_scheme_gate'])
    assert ungated == dict.fromkeys(RABBIT_ONLY, 'passed')
    say('zaqar:// in all: %d of %d passed' % (
        sum(1 for o in on_zaqar.values() if o == 'passed') + len(ungated),
        TESTS))
