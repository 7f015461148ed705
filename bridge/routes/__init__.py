"""Routes: one ``[route:NAME]`` section per bridged flow, validated into
an immutable :class:`bridge.routes.route.Route`."""
