"""The queues Zaqar pushed messages of, still to be read by a listener.

Zaqar pushes a message from a thread of its own while it stores it, so a
push can come before the message can be read: a read that did not find
a pushed message reads that queue again :data:`RECHECKS` seconds later,
then leaves it to the listener's safety net (another server of the topic
may have taken it).  :class:`Rings` keeps that bookkeeping for one
listener (bridge/drivers/zaqar/listener.py); the push thread adds to it,
the polling thread reads it.
"""

import math
import threading

# Seconds after a read that did not find a pushed message before its
# queue is read again, once per entry; then the message is left to the
# safety net.
RECHECKS = (0.005, 0.02, 0.1)


class Ring:
    """A queue Zaqar pushed messages of, to read.

    ``ids``: the dedup ids of the pushed messages not received yet (None
    for a push whose body is not one of the listener's messages);
    ``pushes`` counts the pushes, so a read tells whether one came while it
    ran; ``due``: when to read the queue.
    """

    __slots__ = ('ids', 'pushes', 'rechecks', 'due')

    def __init__(self):
        self.ids = set()
        self.pushes = 0
        self.rechecks = 0
        self.due = 0.0


class Rings:
    """Queue name -> :class:`Ring`, safe between the push thread and the
    polling one."""

    def __init__(self):
        self._rings = {}
        self._lock = threading.Lock()

    def __bool__(self):
        with self._lock:
            return bool(self._rings)

    def pushed(self, queue, dedup_id):
        """A message (dedup id ``dedup_id``, None: not one of ours) was
        pushed for ``queue``: read it now."""
        with self._lock:
            ring = self._rings.get(queue)
            if ring is None:
                self._rings[queue] = ring = Ring()
            if ring.ids is not None:
                if dedup_id is None:
                    ring.ids = None
                else:
                    ring.ids.add(dedup_id)
            ring.pushes += 1
            ring.rechecks = 0
            ring.due = 0.0

    def next_due(self):
        """When the next rung queue is due to be read (inf: none)."""
        with self._lock:
            return min((ring.due for ring in self._rings.values()),
                       default=math.inf)

    def due(self, now):
        """{queue name: pushes so far} of the queues due at ``now``: what
        a read starting now hands back to :meth:`fetched`."""
        with self._lock:
            return {name: ring.pushes for name, ring in self._rings.items()
                    if ring.due <= now}

    def fetched(self, name, pushes, kept, seen, now):
        """``name``, rung ``pushes`` times when its read began, was read
        and ``kept`` messages (``seen``: the dedup ids received so far):
        forget the ring once its messages came, else read the queue again
        soon (:data:`RECHECKS`)."""
        with self._lock:
            ring = self._rings.get(name)
            if ring is None or ring.pushes != pushes:
                return   # pushed again meanwhile: read it again now
            if ring.ids is None:
                found = kept > 0
            else:
                ring.ids = {i for i in ring.ids if i not in seen}
                found = not ring.ids
            if found or ring.rechecks >= len(RECHECKS):
                del self._rings[name]
                return
            ring.due = now + RECHECKS[ring.rechecks]
            ring.rechecks += 1

    def forget(self, unread):
        """Drop the rings of ``unread`` ({name: pushes}, from :meth:`due`;
        rung for no queue the listener reads) unless pushed again since."""
        with self._lock:
            for name, pushes in unread.items():
                ring = self._rings.get(name)
                if ring is not None and ring.pushes == pushes:
                    del self._rings[name]
