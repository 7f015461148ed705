"""Pure translation between AMQP messages and Zaqar messages.

No I/O here: each function takes what was received and returns what to
send, or raises :class:`Reject` with the reason the message can never be
delivered (it then goes to the dead letters).
"""


class Reject(Exception):
    """This message can never be delivered; the text says why."""

    def __init__(self, reason, message_id=None):
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id
