"""Messages waiting to be posted, grouped per (project, queue).

Zaqar takes many messages in one POST, limited by size only; the forward
path gathers what it received for the same queue and posts it at once,
then acknowledges each AMQP message of the batch.  A batch is due when it
is full (count or bytes) or its oldest message waited ``timeout`` seconds.
"""

import time


class Batch:
    __slots__ = ('key', 'items', 'size', 'started')

    def __init__(self, key, now):
        self.key = key
        self.items = []
        self.size = 0
        self.started = now


class Batches:
    def __init__(self, max_count, max_bytes, timeout):
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._open = {}
        self._full = []
        self.pending = 0

    def add(self, key, item, size, now=None):
        """Queue ``item`` (``size`` bytes) for ``key``."""
        now = time.monotonic() if now is None else now
        batch = self._open.get(key)
        if batch is not None and (len(batch.items) >= self.max_count or
                                  batch.size + size > self.max_bytes):
            self._full.append(self._open.pop(key))
            batch = None
        if batch is None:
            batch = self._open[key] = Batch(key, now)
        batch.items.append(item)
        batch.size += size
        self.pending += 1

    def due(self, now=None, force=False):
        """Remove and return the batches to post now."""
        now = time.monotonic() if now is None else now
        out, self._full = self._full, []
        for key, batch in list(self._open.items()):
            if force or len(batch.items) >= self.max_count or \
                    now - batch.started >= self.timeout:
                out.append(self._open.pop(key))
        for batch in out:
            self.pending -= len(batch.items)
        return out

    def put_back(self, batch):
        """Return a batch that could not be posted, to be tried again."""
        self._full.append(batch)
        self.pending += len(batch.items)

    def clear(self):
        """Forget everything (the AMQP channel that delivered it is gone)."""
        self._open.clear()
        self._full.clear()
        self.pending = 0

    def __len__(self):
        return self.pending
