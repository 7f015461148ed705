"""The AMQP adapter's look at py-amqp, and stopping the reverse flow while
kombu waits to reconnect."""

import socket
import threading
import types

from bridge.amqp import consumer
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
