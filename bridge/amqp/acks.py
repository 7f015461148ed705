"""Acknowledging deliveries, several with one frame where it is safe.

``basic.ack`` with ``multiple`` acknowledges every delivery of the channel
up to the given tag.  The forward path finishes messages in batches, not
always in delivery order (batches per queue, retries, dead letters), so
one ``multiple`` ack is sent only when no earlier delivery is still
unfinished; otherwise each message is acknowledged on its own.
"""


class Acks:
    def __init__(self):
        self.unfinished = set()   # delivery tags of the current channel

    def received(self, message):
        self.unfinished.add(message.delivery_tag)

    def ack(self, messages):
        """Acknowledge ``messages`` (all finished now)."""
        self.unfinished.difference_update(m.delivery_tag for m in messages)
        last = max(messages, key=lambda m: m.delivery_tag)
        if len(messages) > 1 and (not self.unfinished or
                                  min(self.unfinished) > last.delivery_tag):
            last.ack(multiple=True)
            return
        for message in messages:
            message.ack()

    def clear(self):
        """The channel is gone; its deliveries come again."""
        self.unfinished.clear()
