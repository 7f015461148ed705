"""The daemon as installed: start, supervision, stop, check-config."""

import os
import signal

import pytest

from tests.fixtures import servers
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional


@pytest.fixture
def config(tmp_path, rabbit, zaqar, unique_name):
    path = bridgeutil.write_config(
        tmp_path / 'bridge.conf', rabbit, zaqar,
        [('guests', bridgeutil.FORWARD.format(exchange=unique_name('ex')))])
    yield path
    bridgeutil.delete_queues(rabbit, path)


def test_killed_worker_is_restarted_and_sigterm_stops(config, tmp_path):
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(2)
    try:
        pids = bridgeutil.wait_until(
            lambda: len(daemon.worker_pids()) == 2 and daemon.worker_pids(),
            what='two workers')
        os.kill(pids[0], signal.SIGKILL)
        bridgeutil.wait_until(
            lambda: (len(daemon.worker_pids()) == 2
                     and pids[0] not in daemon.worker_pids()),
            what='a new worker replacing the killed one')
        bridgeutil.wait_until(
            lambda: daemon.log().count('consuming queue') >= 3,
            what='the new worker consuming')
    finally:
        assert daemon.stop() == 0


def test_check_config_ok(config):
    result = bridgeutil.run_manage(config, 'check-config')
    assert result.returncode == 0, result.stderr
    assert 'guests' in result.stdout and 'to_zaqar' in result.stdout
    assert result.stdout.count(' ok') == 2


def test_check_config_missing_section(tmp_path, rabbit, zaqar):
    path = bridgeutil.write_config(tmp_path / 'b.conf', rabbit, zaqar, [])
    path.write_text(path.read_text().replace('routes = ', 'routes = ghost'))
    result = bridgeutil.run_manage(path, 'check-config')
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "amqp-zaqar-bridge-manage: route 'ghost': listed in [DEFAULT] routes "
        "but the config has no [route:ghost] section")


def test_check_config_bad_transport_url(config):
    config.write_text(config.read_text().replace(
        'transport_url = rabbit://', 'transport_url = kafka://'))
    result = bridgeutil.run_manage(config, 'check-config')
    assert result.returncode == 2
    assert result.stderr.startswith(
        'amqp-zaqar-bridge-manage: [DEFAULT] transport_url:')
    assert len(result.stderr.strip().splitlines()) == 1
    assert 'Traceback' not in result.stderr


def test_check_config_unreachable_rabbitmq(config):
    port = servers.free_port()
    text = config.read_text()
    start = text.index('transport_url = ')
    end = text.index('\n', start)
    config.write_text(text[:start] + 'transport_url = rabbit://guest:guest@'
                      '127.0.0.1:%d/' % port + text[end:])
    result = bridgeutil.run_manage(config, 'check-config')
    assert result.returncode == 1
    assert 'RabbitMQ at rabbit://guest:***@127.0.0.1:%d/ is unreachable' \
        % port in result.stderr
    assert 'Zaqar' not in result.stderr


def test_check_config_unreachable_zaqar(config, zaqar):
    port = servers.free_port()
    config.write_text(config.read_text().replace(
        'url = %s' % zaqar.url, 'url = http://127.0.0.1:%d' % port))
    result = bridgeutil.run_manage(config, 'check-config')
    assert result.returncode == 1
    assert 'Zaqar at http://127.0.0.1:%d is unreachable' % port \
        in result.stderr
    assert 'RabbitMQ' not in result.stderr


def test_daemon_bad_config_exits_2_with_one_line(tmp_path, rabbit, zaqar):
    path = bridgeutil.write_config(tmp_path / 'b.conf', rabbit, zaqar, [
        ('r', 'direction = to_zaqar\nexchange = x\ntenant = bogus')])
    daemon = bridgeutil.Daemon(path, tmp_path / 'b.log')
    import subprocess
    result = subprocess.run(daemon.args, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "amqp-zaqar-bridge: route 'r' option 'tenant': 'bogus' is not "
        "<kind>:<argument> (context:project_id, header:<name>, "
        "routing_key:<regex>, static:<project>, or a plugin)")
