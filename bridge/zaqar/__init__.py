"""Zaqar adapter: a config-free HTTP client, Keystone/trust sessions, the
doorbell webhook server."""
