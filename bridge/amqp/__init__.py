"""AMQP side: connection, dead letters, the forward path and replies."""
