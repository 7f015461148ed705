"""Fixtures shared by the functional tests."""

import types

import pytest


@pytest.fixture
def names(unique_name):
    """Names of this test's own: exchanges, topics, projects, queues."""
    return types.SimpleNamespace(
        exchange=unique_name('ex'), guest=unique_name('g'),
        conductor=unique_name('conductor'), notify=unique_name('notif'),
        tenant=unique_name('tenant'), tenant_a=unique_name('tenant-a'),
        tenant_b=unique_name('tenant-b'), dlq=unique_name('dlq'),
        amqp_queue=unique_name('bridge-test'))
