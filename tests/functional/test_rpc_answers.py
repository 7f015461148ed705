"""Answers to a controller's call: kept alive, confirmed, one per call.

The controller side is real oslo.messaging on RabbitMQ, or a probe caller
speaking the rabbit wire format itself so every answer the bridge
publishes for its call can be counted.  The guest side is zaqarclient
only (tests/functional/test_rpc.py's Guest), answering as it is told.
"""

import json
import os
import threading
import time
from urllib import parse
import uuid

import kombu
import pytest

from bridge import envelope
from tests.functional import bridgeutil

pytestmark = pytest.mark.functional

HEARTBEAT = 2


class Scripted(bridgeutil.Guest):
    """A guest posting, for each call, what ``script(body)`` returns.

    ``script`` gives a list of ``(zaqar queue or None, message)``; None
    is the queue the call says to answer into.  Each message goes with
    the call's reply token, one post each, in order.
    """

    def __init__(self, client, queue, script):
        super().__init__(client, queue, handler=None)
        self.script = script

    def answer(self, body):
        if 'reply' not in body:
            return
        token = body['reply']['token']
        self.tokens.append(token)
        for queue, message in self.script(body):
            post_answer(self.client, queue or body['reply']['queue'], token,
                        message)


def post_answer(client, queue, token, message):
    client.queue(queue).post([{'ttl': 60, 'body': {
        'bridge': 1, 'id': uuid.uuid4().hex, 'reply_token': token,
        'message': message}}])


def final(result, msg_id='ignored'):
    return {'result': result, 'failure': None, 'ending': True,
            '_msg_id': msg_id}


HEARTBEAT_MSG = {'result': None, 'failure': None, 'ending': False}


class Probe:
    """A caller that reads its reply queue itself."""

    def __init__(self, rabbit, names):
        self.names = names
        self.conn = kombu.Connection(rabbit.kombu_url)
        self.reply_q = 'reply_%s' % uuid.uuid4().hex
        self.queue = kombu.Queue(self.reply_q, exclusive=True,
                                 channel=self.conn.default_channel)
        self.queue.declare()
        self.got = []

    def call(self, method, timeout=60, **args):
        msg_id = uuid.uuid4().hex
        message = {'method': method, 'args': args, 'version': '1.0',
                   '_msg_id': msg_id, '_reply_q': self.reply_q,
                   '_unique_id': uuid.uuid4().hex,
                   '_context_project_id': self.names.tenant_a}
        kombu.Producer(self.conn.default_channel).publish(
            json.dumps(envelope.wrap(message)), exchange=self.names.exchange,
            routing_key='guestagent.%s' % self.names.guest,
            content_type='application/json', expiration=timeout)
        return msg_id

    def answers(self):
        """Every answer published to the reply queue so far."""
        message = self.queue.get(no_ack=True)
        while message is not None:
            self.got.append(envelope.unwrap(message.body))
            message = self.queue.get(no_ack=True)
        return self.got

    def close(self):
        self.conn.release()


@pytest.fixture
def probe(rabbit, names):
    p = Probe(rabbit, names)
    yield p
    p.close()


def reasons(rabbit, names, expect):
    return sorted(m.headers['x-bridge-reason'] for m in
                  bridgeutil.dead_letters(rabbit, names.dlq, expect))


def guest_queue(names):
    return 'guestagent_%s' % names.guest


# -- 1. idle connections, and tokens used only once confirmed


TCP_STATES = {'01': 'ESTABLISHED', '08': 'CLOSE_WAIT', '06': 'TIME_WAIT',
              '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '07': 'CLOSE',
              '09': 'LAST_ACK'}


def amqp_sockets(pids, port):
    """{(pid, local port): TCP state} of the AMQP sockets of ``pids``."""
    inodes = {}
    for pid in pids:
        fd_dir = '/proc/%d/fd' % pid
        for fd in os.listdir(fd_dir):
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link.startswith('socket:['):
                inodes[link[len('socket:['):-1]] = pid
    found = {}
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote, state, inode = (fields[1], fields[2],
                                               fields[3], fields[9])
                if inode in inodes and \
                        int(remote.rsplit(':', 1)[1], 16) == port:
                    found[(inodes[inode],
                           int(local.rsplit(':', 1)[1], 16))] = \
                        TCP_STATES.get(state, state)
    return found


def test_calls_return_after_the_routes_sat_idle(tmp_path, rabbit, zaqar,
                                                names, conductor):
    d = bridgeutil.start_rpc_daemon(tmp_path, rabbit, zaqar, names,
                                    'heartbeat = %d\n' % HEARTBEAT)
    guest = bridgeutil.Guest(zaqar.client(names.tenant_a),
                             guest_queue(names), bridgeutil.guest_handler)
    try:
        client = bridgeutil.guest_rpc_client(rabbit, names, timeout=30)
        ctx = {'project_id': names.tenant_a}
        assert client.call(ctx, 'get_status', n=1)['args'] == {'n': 1}
        port = parse.urlsplit(rabbit.kombu_url).port or 5672
        before = amqp_sockets(d.worker_pids(), port)
        # Four routes' workers (guests, conductor, replies, rpc replies),
        # each with its connection open.
        assert len(before) == 4 and set(before.values()) == {
            'ESTABLISHED'}, before
        # Idle for six heartbeat intervals: RabbitMQ closes a connection
        # after two missed ones.  Each worker keeps its connection all
        # along (a closed one would show CLOSE_WAIT here, or be replaced).
        idle_until = time.monotonic() + 6 * HEARTBEAT
        while time.monotonic() < idle_until:
            assert amqp_sockets(d.worker_pids(), port) == before
            time.sleep(0.5)
        # Both ways across the idle routes, calls return.
        assert client.call(ctx, 'get_status', n=2)['args'] == {'n': 2}
        bridgeutil.post(zaqar, names.tenant_a, names.conductor, {
            'bridge': 1, 'message': {
                'method': 'heartbeat', 'args': {'n': 3}, '_msg_id': 'g-m1',
                '_reply_q': 'reply_idle', '_unique_id': uuid.uuid4().hex}})
        (body,) = bridgeutil.drain(
            zaqar.client(names.tenant_a).queue('reply_idle'), 1)
        assert body['message']['result'] == {'seen': {'n': 3}}
        assert amqp_sockets(d.worker_pids(), port) == before
        assert 'RabbitMQ unreachable' not in d.log()
        assert 'dead-lettered' not in d.log()
    finally:
        guest.stop()
        bridgeutil.stop_rpc_daemon(d, rabbit)


def answered_call(rabbit, zaqar, names, script):
    """What a controller's call() returns when the guest posts ``script``,
    and the reason of the one dead letter it makes."""
    guest = Scripted(zaqar.client(names.tenant_a), guest_queue(names),
                     lambda body: script)
    try:
        client = bridgeutil.guest_rpc_client(rabbit, names, timeout=30)
        result = client.call({'project_id': names.tenant_a}, 'get_status')
    finally:
        guest.stop()
    (reason,) = reasons(rabbit, names, 1)
    return result, reason


def test_rejected_answer_does_not_use_the_token(rpc_daemon, rabbit, zaqar,
                                                names):
    # The guest's first answer is refused (failure is not a serialized
    # exception); its correct answer that follows reaches the caller.
    result, reason = answered_call(rabbit, zaqar, names, [
        (None, {'result': None, 'failure': {'no': 'str'}, 'ending': True}),
        (None, final('right answer'))])
    assert result == 'right answer'
    assert 'failure must be a serialized oslo.messaging exception' in reason


# -- 4. one final answer per call


def test_extra_answers_are_dead_lettered_not_published(
        rpc_daemon, rabbit, zaqar, names, probe):
    guest = Scripted(zaqar.client(names.tenant_a), guest_queue(names),
                     lambda body: [(None, {'result': 'x', 'ending': False}),
                                   (None, final('first')),
                                   (None, final('second')),
                                   (None, HEARTBEAT_MSG),
                                   (None, final('third'))])
    try:
        msg_id = probe.call('get_status')
        got = reasons(rabbit, names, 4)
    finally:
        guest.stop()
    assert len(guest.tokens) == 1
    assert sum('already answered' in r for r in got) == 3, got
    assert sum('carries no result nor failure' in r for r in got) == 1, got
    # The extras were handled after the first answer: it is there, alone.
    (answer,) = probe.answers()
    assert answer['_msg_id'] == msg_id
    assert (answer['result'], answer['ending']) == ('first', True)


def test_heartbeat_the_caller_did_not_ask_for_does_not_break_call(
        rpc_daemon, rabbit, zaqar, names):
    result, reason = answered_call(rabbit, zaqar, names, [
        (None, {'result': None, 'ending': False}), (None, final('answer'))])
    assert result == 'answer'
    assert 'heartbeat ("ending": false) for a call without a call-monitor' \
        in reason


def test_heartbeats_keep_a_monitored_call_alive(rpc_daemon, rabbit, zaqar,
                                                names):
    # call_monitor_timeout=4: without the heartbeats passing, the call
    # would end in MessagingTimeout before the answer, posted after them.
    def script(body):
        for _ in range(4):
            post_answer(guest.client, body['reply']['queue'],
                        body['reply']['token'], HEARTBEAT_MSG)
            time.sleep(2)
        return [(None, final('slow answer'))]
    guest = Scripted(zaqar.client(names.tenant_a), guest_queue(names),
                     script)
    try:
        client = bridgeutil.guest_rpc_client(rabbit, names,
                                             timeout=60).prepare(
            call_monitor_timeout=4)
        assert client.call({'project_id': names.tenant_a},
                           'get_status') == 'slow answer'
    finally:
        guest.stop()
    assert 'dead-lettered' not in rpc_daemon.log()


def test_token_accepted_on_one_route_only(rpc_daemon, rabbit, zaqar, names,
                                          probe):
    answered = threading.Event()
    guest = Scripted(zaqar.client(names.tenant_a), guest_queue(names),
                     lambda body: answered.set() or [])
    try:
        probe.call('get_status')
        bridgeutil.wait_until(answered.is_set, what='the call at the guest')
    finally:
        guest.stop()
    (token,) = guest.tokens
    client = zaqar.client(names.tenant_a)
    # Through the conductor route (a to_amqp route for requests): refused.
    post_answer(client, names.conductor, token, final('via conductor'))
    (reason,) = reasons(rabbit, names, 1)
    assert "read from queue 'bridge_replies', not %r" % names.conductor \
        in reason
    # Through the reply queue the call named: published.
    post_answer(client, 'bridge_replies', token, final('via replies'))
    bridgeutil.wait_until(probe.answers, what='the answer')
    # Once more through the conductor route, then the replies route.
    post_answer(client, names.conductor, token, final('again, conductor'))
    post_answer(client, 'bridge_replies', token, final('again, replies'))
    got = reasons(rabbit, names, 2)
    assert any('not %r' % names.conductor in r for r in got), got
    assert any('already answered' in r for r in got), got
    assert [a['result'] for a in probe.answers()] == ['via replies']
