"""kombu's py-amqp transport, reading frames from a buffer.

py-amqp (5.x) reads each frame with three ``recv`` calls (header,
payload, end octet) of exactly the bytes it needs, and sets the socket's
timeout before and after every frame: a message (three frames) costs a
dozen system calls.  :class:`BufferedTCPTransport` receives up to
:data:`CHUNK` bytes at a time and cuts frames out of its buffer;
:class:`Connection` reads a frame that is already buffered without
touching the socket (:meth:`BufferedTCPTransport.buffered_frame`).
With a prefetch of many messages, a burst is then one ``recv`` for
dozens of messages.  TLS connections keep py-amqp's own
transport.

Only py-amqp's frame reading changes (``read_frame``, and
``blocking_read`` when a whole frame is buffered), and ``drain_events``
handles every whole frame buffered after the first event; what is done
with a frame, heartbeats, errors and reconnecting stay py-amqp's and
kombu's.
A frame is taken out of the buffer only once it is whole, so a timeout in
the middle of one loses nothing.
"""

import errno
import socket
import struct

from amqp import exceptions as amqp_exc
from amqp import transport as amqp_transport
import kombu
from kombu.transport import pyamqp

# Bytes asked of the socket at once.
CHUNK = 65536
FRAME_END = 206
_HEADER = struct.Struct('>BHI')     # type, channel, size
_HEADER_SIZE = _HEADER.size
# Errors after which py-amqp still takes the socket for connected.
_UNAVAIL = amqp_transport._UNAVAIL


class BufferedTCPTransport(amqp_transport.TCPTransport):
    """py-amqp's TCP transport, reading frames from a buffer."""

    def _setup_transport(self):
        super()._setup_transport()
        self._buffer = bytearray()
        self._start = 0              # first unread byte of _buffer

    def pending_bytes(self):
        """Bytes received and not yet read as frames."""
        return len(self._buffer) - self._start

    def buffered_frame(self):
        """(frame type, channel, payload) of the next frame if it is
        whole in the buffer (taken out of it), else None; no socket."""
        buffer = self._buffer
        start = self._start
        have = len(buffer) - start
        if have < _HEADER_SIZE:
            return None
        frame_type, channel, size = _HEADER.unpack_from(buffer, start)
        if have <= _HEADER_SIZE + size:
            return None
        start += _HEADER_SIZE
        end = start + size
        self._start = end + 1
        if buffer[end] != FRAME_END:
            raise amqp_exc.UnexpectedFrame(
                'Received frame_end %#04x while expecting 0xce'
                % buffer[end])
        return frame_type, channel, bytes(buffer[start:end])

    def _fill(self, n, initial=False, _retry=(errno.EAGAIN, errno.EINTR)):
        """Receive until at least ``n`` unread bytes are buffered."""
        buffer = self._buffer
        if self._start:
            del buffer[:self._start]
            self._start = 0
        while len(buffer) < n:
            try:
                data = self._quick_recv(max(CHUNK, n - len(buffer)))
            except OSError as exc:
                if exc.errno in _retry:
                    if initial and self.raise_on_initial_eintr:
                        raise socket.timeout()
                    continue
                raise
            if not data:
                raise OSError('Server unexpectedly closed connection')
            buffer += data

    def read_frame(self, unpack=None):
        """(frame type, channel, payload) of the next frame."""
        try:
            if self.pending_bytes() < _HEADER.size:
                self._fill(_HEADER.size, initial=True)
            frame_type, channel, size = _HEADER.unpack_from(self._buffer,
                                                            self._start)
            if self.pending_bytes() < _HEADER.size + size + 1:
                self._fill(_HEADER.size + size + 1)
        except socket.timeout:
            raise
        except OSError as exc:
            if exc.errno not in _UNAVAIL:
                self.connected = False
            raise
        return self.buffered_frame()


class Connection(pyamqp.Connection):
    """kombu's py-amqp connection with :class:`BufferedTCPTransport`."""

    #: The most methods (a delivery is one) :meth:`drain_events` handles
    #: in one call; None: every one whole in the buffer.
    methods_per_turn = None

    def Transport(self, host, connect_timeout, ssl=False, read_timeout=None,
                  write_timeout=None, socket_settings=None, **kwargs):
        if ssl:
            return super().Transport(
                host, connect_timeout, ssl=ssl, read_timeout=read_timeout,
                write_timeout=write_timeout,
                socket_settings=socket_settings, **kwargs)
        return BufferedTCPTransport(
            host, connect_timeout=connect_timeout, read_timeout=read_timeout,
            write_timeout=write_timeout, socket_settings=socket_settings,
            **kwargs)

    def blocking_read(self, timeout=None):
        buffered = getattr(self.transport, 'buffered_frame', None)
        frame = buffered() if buffered is not None else None
        if frame is not None:
            return self.on_inbound_frame(frame)
        return super().blocking_read(timeout)

    def drain_events(self, timeout=None):
        """Wait for one event, as py-amqp does, then handle the whole
        frames already buffered, without the socket, up to
        :attr:`methods_per_turn` methods in all.

        A burst received in one ``recv`` is then one turn of the
        consumer loop (kombu's ``ConsumerMixin`` runs ``on_iteration``
        around every ``drain_events``), or one per ``methods_per_turn``
        deliveries, not one per message.  The buffer holds what one
        ``recv`` gave, so this ends: a frame not whole yet waits for the
        next call, as does what is left after ``methods_per_turn``.
        """
        super().drain_events(timeout)
        buffered = getattr(self.transport, 'buffered_frame', None)
        if buffered is None:
            return
        limit = self.methods_per_turn
        handled = 1
        while limit is None or handled < limit:
            frame = buffered()
            if frame is None:
                return
            if self.on_inbound_frame(frame):
                handled += 1


class Transport(pyamqp.Transport):
    """kombu's ``amqp://`` transport with :class:`Connection`."""

    Connection = Connection


class KombuConnection(kombu.Connection):
    """A kombu connection that keeps :class:`Transport` when it fails
    over: ``switch()`` takes the transport from the next URL's scheme."""

    def switch(self, conn_str):
        super().switch(conn_str)
        if self.transport_cls in ('amqp', 'pyamqp'):
            self.transport_cls = Transport


def pending_bytes(conn):
    """Bytes a kombu connection received and did not read yet; None when
    its transport does not say (not :class:`BufferedTCPTransport`)."""
    transport = getattr(conn.connection, 'transport', None)
    if isinstance(transport, BufferedTCPTransport):
        return transport.pending_bytes()
    return None
