"""An AMQP delivery on a to_zaqar route -> (project, queue, Zaqar message).

The guest reads what is posted: of the request context only the route's
``context_keys`` go along (bridge/context.py).
"""

import functools

from bridge import context
from bridge import envelope
from bridge import jsoncodec
from bridge import naming
from bridge.reject import Reject
from bridge.rpc import relay
from bridge.tenant import rules as tenant_rules
from bridge import wire

# Room kept for the {"messages": [...]} wrapper and the ttl of one message.
POST_OVERHEAD = 64
# The lowest [zaqar] max_messages_post_size can be set to (its min): a
# message this much smaller fits whatever is configured.
SMALLEST_POST_SIZE = 1024
# Zaqar's smallest message TTL; an answer nobody reads within it is stale.
REPLY_TTL = 60
# Queue names remembered (of templates, routing keys and tenants).
QUEUE_NAMES_KEPT = 4096


class Outgoing:
    """One message ready to be posted to Zaqar.

    ``message`` is the Zaqar message (``{"body": ..., "ttl": ...}``) and
    ``data`` its JSON text, serialised once: it gives the size and is what
    :func:`post_data` sends.
    """

    __slots__ = ('project', 'tenant', 'queue', 'message', 'data', 'size',
                 'msg_id', 'received_at', 'answer_queue')

    def __init__(self, project, tenant, queue, message, msg_id,
                 answer_queue=None):
        self.project = project
        self.tenant = tenant
        self.queue = queue
        self.message = message
        self.msg_id = msg_id
        # ASCII (json.dumps escapes the rest): characters are bytes.
        self.data = jsoncodec.dumps(message)
        self.size = len(self.data) + len(SEPARATOR)
        self.received_at = None
        # A call's: the tenant's queue its answer will come to.
        self.answer_queue = answer_queue


# Between two messages of a POST, counted in each message's size.
SEPARATOR = ', '


def post_data(outgoing):
    """The body of one POST of ``outgoing`` (Outgoing messages): the JSON
    text of ``{"messages": [...]}``, from their serialised ``data``."""
    return '{"messages": [%s]}' % SEPARATOR.join(o.data for o in outgoing)


@functools.lru_cache(maxsize=QUEUE_NAMES_KEPT)
def _queue(template, route_name, exchange, routing_key, tenant):
    """The Zaqar queue ``template`` names for a message (or
    naming.QueueNameError).  Kept: a route's messages come with few
    routing keys and tenants, and each would be rendered again."""
    topic, _, server = (routing_key or '').partition('.')
    return naming.render(template, routing_key=routing_key or exchange,
                         exchange=exchange, route=route_name, tenant=tenant,
                         topic=topic, server=server)


def _unwrap(body, problem):
    """The message in an oslo.messaging envelope, and its id."""
    try:
        message = envelope.unwrap(body)
    except envelope.EnvelopeError as exc:
        raise Reject('%s: %s' % (problem, exc), wire.stable_id(None, body))
    return message, wire.stable_id(message, body)


def translate(route, conf, project_of, body, exchange, routing_key,
              headers=None, properties=None, content_type=None):
    """Turn one delivery into an :class:`Outgoing` or raise Reject.

    ``project_of(tenant)`` gives the Zaqar project holding the tenant's
    queues.  ``body`` is the raw AMQP body (bytes).
    """
    oslo = route.envelope == 'oslo'
    if oslo:
        message, msg_id = _unwrap(body, 'bad oslo.messaging envelope')
        extra = {}
    else:
        extra = wire.raw_message(body, content_type)
        message = extra.pop('message')
        msg_id = wire.stable_id(None, body)
    incoming = tenant_rules.Incoming(exchange, routing_key, headers,
                                     message if oslo else {})
    try:
        tenant = tenant_rules.resolve(route.tenant_resolver, incoming)
    except tenant_rules.TenantError as exc:
        raise Reject('tenant rule %s: %s' % (route.tenant, exc), msg_id)
    except Exception as exc:  # a plugin failing on this message
        raise Reject('tenant rule %s failed: %s' % (route.tenant, exc),
                     msg_id)
    try:
        queue = _queue(route.zaqar_queue, route.name, exchange, routing_key,
                       tenant)
    except naming.QueueNameError as exc:
        raise Reject('zaqar_queue: %s' % exc, msg_id)
    reply = None
    if oslo:
        reply = relay.call_to_guest(route, conf, tenant, message,
                                    properties or {}, msg_id)
        message = context.allowed_only(message, route.context_keys)
    zbody = wire.body(message, msg_id=msg_id, reply=reply, route=route.name,
                      exchange=exchange, routing_key=routing_key, **extra)
    return _checked(conf, Outgoing(project_of(tenant), tenant, queue,
                                   {'body': zbody, 'ttl': route.message_ttl},
                                   msg_id, reply and reply['queue']))


def _checked(conf, out):
    if out.size <= SMALLEST_POST_SIZE - POST_OVERHEAD:
        return out      # fits any limit: the option need not be read
    limit = conf.zaqar.max_messages_post_size - POST_OVERHEAD
    if out.size > limit:
        raise Reject('message is %d bytes once wrapped; Zaqar takes at most '
                     '%d per post ([zaqar] max_messages_post_size)'
                     % (out.size, limit), out.msg_id)
    return out


def translate_reply(route, conf, project_of, body, exchange, routing_key,
                    headers=None, properties=None, content_type=None):
    """A controller's answer to a guest's call -> the guest's reply queue.

    The answer's ``_msg_id`` is the token the reverse path put in the call;
    it names the guest's Zaqar reply queue, its project and the guest's own
    msg id.
    """
    message, msg_id = _unwrap(body, 'bad reply envelope')
    address = relay.guest_reply_address(conf, message, msg_id)
    reply = {'result': message.get('result'),
             'failure': message.get('failure'),
             'ending': message.get('ending', True),
             '_msg_id': address['msg_id']}
    zbody = wire.body(reply, msg_id=msg_id, route=route.name)
    return _checked(conf, Outgoing(project_of(address['tenant']),
                                   address['tenant'], address['queue'],
                                   {'body': zbody, 'ttl': REPLY_TTL}, msg_id))
