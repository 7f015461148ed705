"""bridge/flows/recovery.py: when a restarted worker trusts its record of
the subscriptions it made (and skips creating them)."""

import time
import types

import pytest

from bridge.flows import recovery
from bridge.zaqar import doorbell


def worker(monkeypatch, found):
    """A Recovery whose canary queue's record is ``found``."""
    monkeypatch.setattr(doorbell, 'recorded', lambda client, queue: found)
    route = types.SimpleNamespace(name='r', retry_max_interval=1)
    clients = types.SimpleNamespace(for_project=lambda project: None)
    canary = types.SimpleNamespace(project='own', name='canary')
    return recovery.Recovery(route, clients, None, None, canary, 60)


@pytest.mark.parametrize('found,trusted', [
    ({'digest': 'd', 'at': time.time() - 60}, True),
    (None, False),
    ({'digest': 'other', 'at': time.time() - 60}, False),
    # Older than half a subscription's ttl: Zaqar may expire them.
    ({'digest': 'd', 'at': time.time() - doorbell.SUBSCRIPTION_TTL}, False),
    # From the future (a clock set back): not trusted.
    ({'digest': 'd', 'at': time.time() + 3600}, False)])
def test_a_record_is_trusted_only_for_the_same_digest_and_young(
        monkeypatch, found, trusted):
    since = worker(monkeypatch, found)._subscribed_before('d')
    assert (since is not None) == trusted


def test_no_canary_no_record(monkeypatch):
    assert worker(monkeypatch, {'digest': 'd', 'at': time.time()}
                  )._subscribed_before(None) is None
