"""The AMQP adapter's look at py-amqp, its buffered frame reading, and
stopping the reverse flow while kombu waits to reconnect."""

import socket
import struct
import threading
import types

from amqp import exceptions as amqp_exc
import kombu
import pytest

from bridge.amqp import connection as amqp_connection
from bridge.amqp import consumer
from bridge.amqp import transport
from tests.unit import confutil


def connection(transport):
    return types.SimpleNamespace(
        connection=types.SimpleNamespace(transport=transport))


def test_more_waiting_reads_py_amqp_read_ahead_then_the_socket():
    ours, theirs = socket.socketpair()
    try:
        transport = types.SimpleNamespace(sock=ours, _read_buffer=b'')
        assert consumer.more_waiting(connection(transport)) is False
        transport._read_buffer = b'\x01frame'   # py-amqp read ahead
        assert consumer.more_waiting(connection(transport)) is True
        transport._read_buffer = b''
        theirs.sendall(b'x')                    # waiting in the socket
        assert consumer.more_waiting(connection(transport)) is True
        # A transport without py-amqp's buffer: the socket alone answers.
        plain = types.SimpleNamespace(sock=ours)
        assert consumer.more_waiting(connection(plain)) is True
    finally:
        ours.close()
        theirs.close()


def test_more_waiting_without_a_socket_batches_by_time():
    assert consumer.more_waiting(connection(None)) is True


def test_reverse_stops_while_rabbitmq_is_unreachable(tmp_path):
    r = confutil.reverser(tmp_path, confutil.FakeClients(set()))
    # Nothing listens there: kombu keeps retrying until told to stop.
    r.connection = r.connection.clone(
        hostname='amqp://guest:guest@127.0.0.1:1//')
    errors = []
    r._amqp_error = lambda exc, interval: errors.append(exc)
    runner = threading.Thread(target=r.run, daemon=True)
    runner.start()
    for _ in range(100):
        if errors:
            break
        runner.join(0.1)
    assert errors, 'kombu never reported the unreachable broker'
    r.stop()
    runner.join(10)
    assert not runner.is_alive()


# -- bridge/amqp/transport.py: frames cut out of a buffer

def frame(payload, channel=1, frame_type=1, end=transport.FRAME_END):
    return struct.pack('>BHI', frame_type, channel, len(payload)) + \
        payload + bytes([end])


@pytest.fixture
def buffered():
    ours, theirs = socket.socketpair()
    t = transport.BufferedTCPTransport('127.0.0.1:5672', connect_timeout=1)
    t.sock = ours
    t._setup_transport()
    t.connected = True
    yield t, theirs
    ours.close()
    theirs.close()


def test_buffered_frames_one_recv_for_many(buffered):
    t, peer = buffered
    frames = [frame(b'deliver %d' % n, channel=n) for n in range(51)]
    peer.sendall(b''.join(frames))
    assert t.read_frame() == (1, 0, b'deliver 0')
    # The rest came with the first recv: read without the socket.
    t._quick_recv = None
    for n in range(1, 50, 2):
        assert t.buffered_frame() == (1, n, b'deliver %d' % n)
        assert t.read_frame() == (1, n + 1, b'deliver %d' % (n + 1))
    assert t.buffered_frame() is None and t.pending_bytes() == 0


def test_buffered_frame_split_across_reads_and_a_timeout(buffered):
    t, peer = buffered
    whole = frame(b'x' * 1000) + frame(b'next')
    peer.sendall(whole[:5])
    t.sock.settimeout(0.05)
    with pytest.raises(socket.timeout):   # header not complete
        t.read_frame()
    peer.sendall(whole[5:600])
    with pytest.raises(socket.timeout):   # payload not complete
        t.read_frame()
    assert t.buffered_frame() is None and t.connected
    peer.sendall(whole[600:])
    assert t.read_frame() == (1, 1, b'x' * 1000)   # nothing was lost
    assert t.read_frame() == (1, 1, b'next')


def test_buffered_frame_bad_end_and_closed_peer(buffered):
    t, peer = buffered
    peer.sendall(frame(b'bad', end=0))
    with pytest.raises(amqp_exc.UnexpectedFrame):
        t.read_frame()
    peer.close()
    with pytest.raises(OSError):
        t.read_frame()
    assert not t.connected


def test_buffered_connection_keeps_its_transport_on_failover(tmp_path):
    conf, _ = confutil.load(tmp_path, confutil.ROUTES, routes='fwd')
    conf.set_override('transport_url', 'rabbit://u:p@h1:5672,u:p@h2:5672/')
    conn = amqp_connection.connection(conf, buffered=True)
    assert conn.get_transport_cls() is transport.Transport
    conn.maybe_switch_next()   # what kombu does when h1 fails
    assert conn.hostname == 'h2'
    assert conn.get_transport_cls() is transport.Transport
    # Why KombuConnection: kombu's own takes the next URL's scheme.
    plain = kombu.Connection('amqp://u:p@h1:5672//;amqp://u:p@h2:5672//',
                             transport=transport.Transport)
    plain.maybe_switch_next()
    assert plain.get_transport_cls() is not transport.Transport
    # Other connections keep kombu's own transport.
    assert amqp_connection.connection(conf).get_transport_cls() is not \
        transport.Transport


def test_more_waiting_reads_the_buffered_transport(buffered):
    t, peer = buffered
    conn = connection(t)
    assert consumer.more_waiting(conn) is False
    peer.sendall(frame(b'a') + frame(b'b'))
    t.read_frame()                          # the second one is buffered
    assert transport.pending_bytes(conn) > 0
    assert consumer.more_waiting(conn) is True


def test_drain_events_handles_every_whole_buffered_frame(buffered):
    t, peer = buffered
    conn = transport.Connection.__new__(transport.Connection)
    conn.transport = t
    seen = []

    def on_inbound_frame(frame):
        seen.append(frame[2])
        return True   # each one a whole event

    conn.on_inbound_frame = on_inbound_frame
    last = frame(b'third')
    peer.sendall(frame(b'first') + frame(b'second') + last[:4])
    conn.drain_events(timeout=1)
    # One call: the first event, then the whole frame behind it; the
    # third waits, unread, for its missing bytes.
    assert seen == [b'first', b'second']
    assert t.pending_bytes() == 4
    peer.sendall(last[4:])
    conn.drain_events(timeout=1)
    assert seen == [b'first', b'second', b'third']
    with pytest.raises(socket.timeout):   # nothing more: py-amqp's wait
        conn.drain_events(timeout=0.05)


def test_drain_events_handles_at_most_methods_per_turn(buffered):
    t, peer = buffered
    conn = transport.Connection.__new__(transport.Connection)
    conn.transport = t
    conn.methods_per_turn = 2
    seen = []

    def on_inbound_frame(frame):
        seen.append(frame[2])
        return frame[2] != b'header'   # a header alone completes nothing

    conn.on_inbound_frame = on_inbound_frame
    peer.sendall(b''.join(frame(n) for n in (
        b'm1', b'header', b'm2', b'm3', b'm4')))
    conn.drain_events(timeout=1)
    assert seen == [b'm1', b'header', b'm2']      # two methods
    conn.drain_events(timeout=1)                  # the rest, from the buffer
    assert seen == [b'm1', b'header', b'm2', b'm3', b'm4']
