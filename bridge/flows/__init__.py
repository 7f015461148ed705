"""The flows: where the AMQP and Zaqar adapters meet (forward, reverse)."""
