"""Zaqar side: per-tenant clients and the reverse (Zaqar -> AMQP) path."""
