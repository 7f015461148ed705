"""benchmarks/wscount.py counts a websocket client's requests right."""

import os
import struct

from benchmarks import wscount


def frame(opcode, payload, fin=True):
    """A client frame (masked), as RFC 6455 section 5.2 lays it out."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack('>H', n)
    else:
        head += bytes([0x80 | 127]) + struct.pack('>Q', n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_counts_data_frames_after_the_upgrade_in_any_chunking():
    stream = (b'GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n'
              + frame(0x1, b'{"action": "subscription_create"}')
              + frame(0x9, b'')
              + frame(0x1, b'x' * 300)
              + frame(0x1, b'y' * 70000, fin=False) + frame(0x0, b'z')
              + frame(0xA, b'p'))
    for size in (1, 7, 4096, len(stream)):
        counts = {}
        counter = wscount.FrameCounter(counts)
        for i in range(0, len(stream), size):
            counter.feed(stream[i:i + size])
        assert counts == {'text': 3, 'ping': 1, 'pong': 1}, size
