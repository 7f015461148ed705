"""RPC across the bridge: reply tokens issued and checked, the replies
route, and the [rpc] options (see bridge/rpc/relay.py)."""
