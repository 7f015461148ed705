"""A TCP proxy in front of a websocket zaqar-server that counts requests.

Zaqar's websocket transport takes one request per data frame the client
sends (``{"action": ..., "headers": ..., "body": ...}``); ping, pong and
close frames are not requests.  The proxy passes every byte through
unchanged and, after the HTTP upgrade, reads the client's frames to count
them by opcode.  It runs in a process of its own (as
common.CountingProxy), so it does not compete with the benchmark's
callers for the GIL.
"""

import contextlib
import socket
import struct
import threading

from benchmarks import common

OPCODES = {0x1: 'text', 0x2: 'binary', 0x8: 'close', 0x9: 'ping',
           0xA: 'pong'}


class FrameCounter:
    """Counts the frames of a client's byte stream, after its upgrade."""

    def __init__(self, counts):
        self.counts = counts
        self.buf = b''
        self.upgraded = False

    def feed(self, data):
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b'\r\n\r\n')
            if end < 0:
                return
            self.upgraded = True
            self.buf = self.buf[end + 4:]
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            length, header = b1 & 0x7F, 2
            if length == 126:
                if len(self.buf) < 4:
                    return
                length, header = struct.unpack('>H', self.buf[2:4])[0], 4
            elif length == 127:
                if len(self.buf) < 10:
                    return
                length, header = struct.unpack('>Q', self.buf[2:10])[0], 10
            if b1 & 0x80:
                header += 4   # the client's mask
            if len(self.buf) < header + length:
                return
            opcode = b0 & 0x0F
            if opcode:        # a continuation frame is the same message
                kind = OPCODES.get(opcode, 'other')
                self.counts[kind] = self.counts.get(kind, 0) + 1
            self.buf = self.buf[header + length:]


def _pump(src, dst, counter=None):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if counter is not None:
                counter.feed(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _serve(upstream_port, listener, counts, lock):
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(('127.0.0.1', upstream_port))
        except OSError:
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        class Locked(FrameCounter):
            def feed(self, data):
                with lock:
                    super().feed(data)
        threading.Thread(target=_pump, daemon=True,
                         args=(client, upstream, Locked(counts))).start()
        threading.Thread(target=_pump, daemon=True,
                         args=(upstream, client)).start()


def _main(upstream_port, port, control):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('127.0.0.1', port))
    listener.listen(64)
    counts, lock = {}, threading.Lock()
    threading.Thread(target=_serve, daemon=True,
                     args=(upstream_port, listener, counts, lock)).start()
    control.send('ready')
    while True:
        command = control.recv()
        if command == 'stop':
            listener.close()
            return
        with lock:
            control.send(dict(counts))


class WebsocketCountingProxy(common.ProxyProcess):
    """``url`` leads to the websocket server on ``upstream_port``;
    :meth:`counts` says how many frames of each kind clients sent."""

    scheme = 'ws'
    what = 'websocket counting proxy'

    def __init__(self, upstream_port):
        super().__init__(_main, upstream_port)

    def counts(self):
        """{'text': n, 'ping': n, ...}: frames clients sent so far."""
        return self._ask('counts')

    def requests(self):
        """Frames that are Zaqar requests (data frames)."""
        counts = self.counts()
        return counts.get('text', 0) + counts.get('binary', 0)
