"""Guest on zaqar://, controller on rabbit://, the bridge daemon between.

Both sides are unmodified oslo.messaging objects; neither knows about the
other's transport.
"""

import threading
import time

from oslo_context import context
import oslo_messaging
import pytest

from tests.functional import bridgeutil
from tests.functional import guestutil

pytestmark = pytest.mark.functional

# Where the exceptions the guests raise are defined.
EXMODS = ['tests.functional.guestutil']


def test_controller_calls_and_casts_guest(guest_daemon, rabbit, guest_url,
                                          names):
    agent = guestutil.GuestAgent('a')
    srv = guestutil.guest_server(guest_url(names.tenant_a),
                                 'guestagent.%s' % names.guest, 'host-a',
                                 agent, names.exchange)
    try:
        client = guestutil.controller_client(rabbit, names)
        ctxt = {'project_id': names.tenant_a, 'user_id': 'admin'}
        assert client.call(ctxt, 'get_status', x=1) == {
            'guest': 'a', 'project': names.tenant_a, 'args': {'x': 1}}
        direct = client.prepare(server='host-a')
        assert direct.call(ctxt, 'get_status', y=2)['args'] == {'y': 2}
        client.cast(ctxt, 'prepare', memory=512)
        bridgeutil.wait_until(lambda: agent.casts, what='the cast')
        assert agent.casts == [{'memory': 512}]
        # The rabbit side must allow the guest's exception module, as for
        # any remote exception.
        transport = oslo_messaging.get_rpc_transport(
            bridgeutil.oslo_conf(), url=rabbit.url,
            allowed_remote_exmods=EXMODS)
        failing = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(
                exchange=names.exchange, topic='guestagent.%s' % names.guest),
            timeout=20)
        with pytest.raises(guestutil.GuestError, match='disk full'):
            failing.call(ctxt, 'fail', why='disk full')
        with pytest.raises(oslo_messaging.MessagingTimeout):
            client.prepare(timeout=2).call(ctxt, 'slow', seconds=4)
    finally:
        guestutil.stop(*srv)


def test_guest_heartbeats_keep_a_monitored_controller_call_alive(
        guest_daemon, rabbit, guest_url, names):
    srv = guestutil.guest_server(guest_url(names.tenant_a),
                                 'guestagent.%s' % names.guest, 'host-a',
                                 guestutil.GuestAgent('a'), names.exchange)
    try:
        # Without the guest's heartbeats (every 2 s) through the bridge,
        # the call would time out after 4 s, long before the answer.
        client = guestutil.controller_client(rabbit, names,
                                             timeout=60).prepare(
            call_monitor_timeout=4)
        assert client.call({'project_id': names.tenant_a}, 'slow',
                           seconds=10) is None
    finally:
        guestutil.stop(*srv)
    assert 'dead-lettered' not in guest_daemon.log()


def test_fanout_reaches_two_guests(guest_daemon, rabbit, guest_url, names):
    agents = [guestutil.GuestAgent('a'), guestutil.GuestAgent('b')]
    servers = [guestutil.guest_server(guest_url(names.tenant_a),
                                      'guestagent.%s'
                                      % names.guest, 'host-%d' % i, agent,
                                      names.exchange)
               for i, agent in enumerate(agents)]
    try:
        time.sleep(1.5)  # fanout listeners read from when they started
        client = guestutil.controller_client(rabbit, names, fanout=True)
        client.cast({'project_id': names.tenant_a}, 'prepare', all=True)
        bridgeutil.wait_until(lambda: all(a.casts for a in agents),
                              what='both guests')
        assert [a.casts for a in agents] == [[{'all': True}]] * 2
    finally:
        for srv in servers:
            guestutil.stop(*srv)


class Conductor:
    def __init__(self):
        self.calls = []

    def heartbeat(self, ctxt, **kwargs):
        self.calls.append((ctxt, kwargs))
        return {'ack': kwargs}


def test_guest_casts_and_calls_controller(guest_daemon, rabbit, guest_url,
                                          names):
    endpoint = Conductor()
    server = oslo_messaging.get_rpc_server(
        oslo_messaging.get_rpc_transport(bridgeutil.oslo_conf(),
                                         url=rabbit.url),
        oslo_messaging.Target(exchange=names.exchange, topic=names.conductor,
                              server='c1'),
        [endpoint], executor='threading')
    server.start()
    transport = oslo_messaging.get_rpc_transport(
        guestutil.make_conf(), url=guest_url(names.tenant_b))
    try:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=names.conductor),
            timeout=20)
        spoof = {'project_id': names.tenant_a, 'is_admin': True}
        client.cast(spoof, 'heartbeat', n=1)
        assert client.call(spoof, 'heartbeat', n=2) == {'ack': {'n': 2}}
        bridgeutil.wait_until(lambda: len(endpoint.calls) == 2,
                              what='cast and call')
        for ctxt, _ in endpoint.calls:
            assert ctxt['project_id'] == names.tenant_b
            assert ctxt['is_admin'] is False
        with pytest.raises(oslo_messaging.MessagingTimeout):
            # Not in allowed_methods: dead-lettered, never answered.
            client.prepare(timeout=3).call({}, 'drop_everything')
    finally:
        transport.cleanup()
        server.stop()
        server.wait()


class Listener:
    def __init__(self):
        self.events = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.events.append((ctxt, event_type, payload))


def test_guest_notifier_reaches_rabbit_listener(guest_daemon, rabbit,
                                                guest_url, names):
    endpoint = Listener()
    listener = oslo_messaging.get_notification_listener(
        oslo_messaging.get_notification_transport(bridgeutil.oslo_conf(),
                                                  url=rabbit.url),
        [oslo_messaging.Target(topic=names.notify, exchange=names.exchange)],
        [endpoint], executor='threading')
    listener.start()
    transport = oslo_messaging.get_notification_transport(
        guestutil.make_conf(), url=guest_url(names.tenant_a))
    try:
        notifier = oslo_messaging.Notifier(transport, driver='messaging',
                                           publisher_id='guest',
                                           topics=[names.notify])
        ctxt = context.RequestContext(project_id='spoofed')
        notifier.info(ctxt, 'nova.secret', {'no': 1})
        notifier.info(ctxt, 'trove.instance.heartbeat', {'ok': 1})
        bridgeutil.wait_until(lambda: endpoint.events, what='notification')
        time.sleep(1)
        assert [(e[0]['project_id'], e[1], e[2]) for e in endpoint.events] \
            == [(names.tenant_a, 'trove.instance.heartbeat', {'ok': 1})]
    finally:
        transport.cleanup()
        listener.stop()
        listener.wait()


def test_tenants_do_not_see_each_others_messages(guest_daemon, rabbit,
                                                 guest_url, names):
    agent_a, agent_b = guestutil.GuestAgent('a'), guestutil.GuestAgent('b')
    topic = 'guestagent.%s' % names.guest
    servers = [guestutil.guest_server(guest_url(names.tenant_a), topic, 'h',
                                      agent_a, names.exchange),
               guestutil.guest_server(guest_url(names.tenant_b), topic, 'h',
                                      agent_b, names.exchange)]
    try:
        client = guestutil.controller_client(rabbit, names)
        for i in range(3):
            client.cast({'project_id': names.tenant_a}, 'prepare', n=i)
        result = client.call({'project_id': names.tenant_b}, 'get_status')
        assert result['guest'] == 'b'
        bridgeutil.wait_until(lambda: len(agent_a.casts) == 3,
                              what='tenant A casts')
        time.sleep(1)
        assert agent_b.casts == []
        assert sorted(c['n'] for c in agent_a.casts) == [0, 1, 2]
    finally:
        for srv in servers:
            guestutil.stop(*srv)


def test_wait_helper_threads_are_cleaned():
    # The guest driver's threads end with cleanup(): none left running.
    leftovers = [t for t in threading.enumerate()
                 if 'zaqar' in t.name.lower()]
    assert leftovers == []
