"""Which request-context keys cross the bridge, each way: allowlists.

oslo.messaging flattens a request context into ``_context_<key>`` fields
of the message.  Whoever reads the message rebuilds a context from them
(``RequestContext.from_dict()``, Trove's ``TroveContext.from_dict()``), so
every key that crosses the bridge is trusted by the other side.  Only the
keys a route lists in ``context_keys`` cross; every other ``_context_``
field is dropped.

* Guests -> control plane (``to_amqp``): besides the listed keys, the
  keys naming the project are always set to the tenant of the queue the
  message was read from, and the privilege keys are always set to no
  privilege (``is_admin`` False, ``roles`` empty, ``is_admin_project``
  False, which ``from_dict`` would otherwise default to True).
* Control plane -> guests (``to_zaqar``): the listed keys only, so a
  controller's token, roles or admin flag never reach a guest unless the
  operator lists them.
"""

from bridge import envelope

# The keys oslo.context (to_dict/from_dict) and Keystone use for the
# project a request acts for.
PROJECT_KEYS = ('project_id', 'tenant', 'project')


def _no_privilege():
    """What a guest's message always says about privileges (from_dict
    would default is_admin_project to True)."""
    return {'is_admin': False, 'roles': [], 'is_admin_project': False}


FORCED_KEYS = PROJECT_KEYS + tuple(_no_privilege())

# Guests -> control plane: tracing ids only.
TO_AMQP_DEFAULT = ('request_id', 'global_request_id')
# Control plane -> guests: what TroveContext.from_dict() reads to rebuild
# a guest's context (trove 26: oslo.context's keys plus limit, marker,
# trove_notification), without credentials (auth_token, service_token,
# service_catalog, trace_info), privileges (is_admin, roles,
# is_admin_project, system_scope) or the Keystone domains.
TO_ZAQAR_DEFAULT = ('project_id', 'tenant', 'project', 'user',
                    'user_identity', 'request_id', 'global_request_id',
                    'resource_uuid', 'read_only', 'show_deleted', 'limit',
                    'marker', 'instance_id', 'timeout', 'trove_notification')


def key_of(field):
    """The context key of a message field, or None if it is not one."""
    if isinstance(field, str) and field.startswith(envelope.CONTEXT_PREFIX):
        return field[len(envelope.CONTEXT_PREFIX):]
    return None


def allowed_only(message, allowed):
    """A copy of ``message`` whose only context fields are ``allowed``.

    What a guest gets of a control-plane message.
    """
    prefix = envelope.CONTEXT_PREFIX
    skip = len(prefix)
    return {field: value for field, value in message.items()
            if not (isinstance(field, str) and field.startswith(prefix))
            or field[skip:] in allowed}


def for_control_plane(message, project, allowed):
    """A copy of a guest's message that acts for ``project`` and no more."""
    out = allowed_only(message, set(allowed) - set(FORCED_KEYS))
    forced = dict.fromkeys(PROJECT_KEYS, project)
    forced.update(_no_privilege())
    out.update((envelope.CONTEXT_PREFIX + key, value)
               for key, value in forced.items())
    return out
