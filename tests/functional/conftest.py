"""Fixtures shared by the functional tests."""

import types

import pytest

from tests.functional import bridgeutil


@pytest.fixture
def names(unique_name):
    """Names of this test's own: exchanges, topics, projects, queues."""
    return types.SimpleNamespace(
        exchange=unique_name('ex'), guest=unique_name('g'),
        conductor=unique_name('conductor'), notify=unique_name('notif'),
        tenant=unique_name('tenant'), tenant_a=unique_name('tenant-a'),
        tenant_b=unique_name('tenant-b'), dlq=unique_name('dlq'),
        amqp_queue=unique_name('bridge-test'))


class Conductor:
    """A control-plane RPC endpoint that records what reaches it."""

    def __init__(self):
        self.calls = []

    def heartbeat(self, ctxt, **kwargs):
        self.calls.append(('heartbeat', ctxt, kwargs))
        return {'seen': kwargs}

    def drop_everything(self, ctxt, **kwargs):
        self.calls.append(('drop_everything', ctxt, kwargs))


@pytest.fixture
def conductor(rabbit, names):
    """A real oslo.messaging RPC server (rabbit://) on names.conductor."""
    endpoint = Conductor()
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
