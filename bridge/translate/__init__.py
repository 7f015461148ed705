"""Pure translation between AMQP messages and Zaqar messages.

No I/O here: each function takes what was received and returns what to
send, or raises :class:`bridge.reject.Reject` with the reason the message
can never be delivered (it then goes to the dead letters).
"""
