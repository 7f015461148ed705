"""A message that can never be delivered, and why.

Raised by the pure translation and RPC checks; the flows send the message
to the dead letters with the reason.
"""


class Reject(Exception):
    """This message can never be delivered; the text says why."""

    def __init__(self, reason, message_id=None):
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id
