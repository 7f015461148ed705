"""Fixtures shared by the functional tests."""

import contextlib
import types
from urllib import parse

import oslo_messaging

import pytest

from tests.functional import bridgeutil
from tests.functional import guestutil


@pytest.fixture
def names(unique_name):
    """Names of this test's own: exchanges, topics, projects, queues."""
    return types.SimpleNamespace(
        exchange=unique_name('ex'), guest=unique_name('g'),
        conductor=unique_name('conductor'), notify=unique_name('notif'),
        tenant=unique_name('tenant'), tenant_a=unique_name('tenant-a'),
        tenant_b=unique_name('tenant-b'), dlq=unique_name('dlq'),
        amqp_queue=unique_name('bridge-test'))


@pytest.fixture
def conductor(rabbit, names):
    """A real oslo.messaging RPC server (rabbit://) on names.conductor."""
    endpoint = bridgeutil.Conductor()
    server = bridgeutil.rpc_server(rabbit, names.exchange, names.conductor,
                                   endpoint)
    yield endpoint
    bridgeutil.stop_server(server)


@pytest.fixture
def rpc_daemon(tmp_path, rabbit, zaqar, names):
    """The daemon of tests/functional/test_rpc.py: guests, conductor and
    replies routes."""
    d = bridgeutil.start_rpc_daemon(tmp_path, rabbit, zaqar, names)
    yield d
    bridgeutil.stop_rpc_daemon(d, rabbit)


# The guest driver on its own (tests/functional/test_driver_*.py).
@pytest.fixture
def guest_url(zaqar):
    """``guest_url(project)``: a zaqar:// transport URL for a project."""
    netloc = parse.urlsplit(zaqar.url).netloc

    def make(project, **query):
        query['project_id'] = project
        return 'zaqar://%s/?%s' % (netloc, parse.urlencode(query))
    return make


@pytest.fixture
def project(unique_name):
    return unique_name('guest')


@pytest.fixture
def cleanups():
    stack = contextlib.ExitStack()
    with stack:
        yield stack


@pytest.fixture
def transport(cleanups):
    def make(url, exmods=None):
        t = oslo_messaging.get_rpc_transport(
            guestutil.make_conf(), url=url, allowed_remote_exmods=exmods)
        cleanups.callback(t.cleanup)
        return t
    return make


@pytest.fixture
def server(transport, cleanups):
    def make(url, topic, name, endpoints):
        srv = oslo_messaging.get_rpc_server(
            transport(url), oslo_messaging.Target(topic=topic, server=name),
            endpoints)  # the default executor is 'threading'

        def stop():
            srv.stop()
            srv.wait()
        srv.start()
        cleanups.callback(stop)
        return srv
    return make


@pytest.fixture
def guest_daemon(tmp_path, rabbit, zaqar, names):
    """The daemon of the guest driver tests: guests, fanout, conductor,
    notifications and replies routes."""
    tenants = '%s, %s' % (names.tenant_a, names.tenant_b)
    routes = [
        ('guests', bridgeutil.guests_route(
            names.exchange, binding_keys='guestagent.*, guestagent.*.*')),
        ('fanout', '''
            direction = to_zaqar
            exchange = guestagent.%s_fanout
            exchange_type = fanout
            tenant = context:project_id
            zaqar_queue = {exchange}
            ''' % names.guest),
        ('conductor', '''
            direction = to_amqp
            exchange = %s
            zaqar_queue = %s
            tenants = %s
            allowed_methods = heartbeat, report
            poll_interval = 0.1
            ''' % (names.exchange, names.conductor, tenants)),
        ('notifications', '''
            direction = to_amqp
            exchange = %s
            zaqar_queue = %s.info
            routing_key = %s.info
            tenants = %s
            allowed_event_types = trove.*
            poll_interval = 0.1
            ''' % (names.exchange, names.notify, names.notify, tenants)),
        ('replies', '''
            direction = to_amqp
            exchange =
            zaqar_queue = bridge_replies
            tenants = %s
            poll_interval = 0.05
            ''' % tenants),
    ]
    config = bridgeutil.write_config(tmp_path / 'bridge.conf', rabbit, zaqar,
                                     routes)
    d = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(6)
    yield d
    assert d.stop() == 0
    bridgeutil.delete_queues(rabbit, config)
