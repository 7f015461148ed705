"""A Zaqar message read from a tenant's queue -> what to publish on AMQP.

The tenant is the project of the queue the message was read from, never
a value of the body.  No message nests more than ``max_depth`` levels.
On ``envelope = oslo`` routes:

* an answer to a controller's call must carry a valid ``reply_token``
  issued for this tenant and for the queue it was read from; it is
  published to the caller's reply queue: one final answer per token, and
  before it only heartbeats the caller asked for
  (:func:`bridge.rpc.relay.answer_from_guest`);
* an RPC request must name a method in ``allowed_methods``; its context
  keeps only the route's ``context_keys`` and is forced to the tenant
  (bridge/context.py), its ``_timeout`` and ``_unique_id`` are bounded
  (bridge/bounds.py); a call must name one of the tenant's queues
  (``guest_reply_queue``) in ``_reply_q``, and gets a signed ``_msg_id``
  and the bridge's ``_reply_q`` so the answer finds its way back to the
  guest;
* a notification must match ``allowed_event_types``; its context and
  fields are treated as a request's.

Everything else raises :class:`Reject`.
"""

import fnmatch
import json

from bridge import bounds
from bridge import context
from bridge import envelope
from bridge.reject import Reject
from bridge.rpc import relay
from bridge import wire


class Publish:
    """One AMQP message to publish."""

    def __init__(self, kind, exchange, routing_key, body, headers,
                 mandatory=False, msg_id=None, answer=None):
        self.kind = kind
        # An answer: (token, expiry, final), to record once published.
        self.answer = answer
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.headers = headers
        self.mandatory = mandatory
        self.msg_id = msg_id


def translate(route, conf, tenant, queue, body, zaqar_id, used_tokens=None):
    """Decide what to publish for one message, or raise Reject."""
    headers = {'x-bridge-tenant': tenant, 'x-bridge-route': route.name,
               'x-bridge-zaqar-queue': queue,
               'x-bridge-message-id': zaqar_id or ''}
    _checked(bounds.check_depth, body, route.max_depth, msg_id=zaqar_id)
    size = len(json.dumps(body))
    if size > conf.zaqar.max_messages_post_size:
        raise Reject('message is %d bytes, more than %d' %
                     (size, conf.zaqar.max_messages_post_size), zaqar_id)
    if route.envelope == 'raw':
        return Publish('raw', route.exchange, route.routing_key, body,
                       headers, msg_id=zaqar_id)
    try:
        data = wire.parse(body)
    except wire.WireError as exc:
        raise Reject('not a bridge message: %s' % exc, zaqar_id)
    message = data['message']
    msg_id = data.get('id') or zaqar_id
    if not isinstance(message, dict):
        raise Reject('"message" must be an object', msg_id)
    # Again: a body posted as a JSON string or an oslo envelope was
    # opened only now.
    _checked(bounds.check_depth, message, route.max_depth, msg_id=msg_id)
    if 'reply_token' in data:
        reply, address, answer = relay.answer_from_guest(
            conf, tenant, queue, data['reply_token'], message, msg_id,
            used_tokens)
        return Publish('reply', '', address['queue'], envelope.wrap(reply),
                       headers, mandatory=True, msg_id=msg_id, answer=answer)
    try:
        kind = envelope.kind(message)
    except envelope.EnvelopeError as exc:
        raise Reject('bad oslo.messaging message: %s' % exc, msg_id)
    if kind == 'reply':
        raise Reject('an answer without reply_token', msg_id)
    if kind == 'rpc':
        if message['method'] not in route.allowed_methods:
            raise Reject('method %r is not in allowed_methods of route %s'
                         % (message['method'], route.name), msg_id)
    elif not any(fnmatch.fnmatchcase(str(message['event_type']), pattern)
                 for pattern in route.allowed_event_types):
        raise Reject('event type %r is not in allowed_event_types of route '
                     '%s' % (message['event_type'], route.name), msg_id)
    forced = _checked(bounds.bounded, context.for_control_plane(
        message, tenant, route.context_keys), tenant, route.max_call_timeout,
        msg_id=msg_id)
    if kind == 'rpc' and message.get('_msg_id') is not None:
        forced.update(relay.call_from_guest(route, conf, tenant, message,
                                            msg_id))
    return Publish(kind, route.exchange, route.routing_key,
                   envelope.wrap(forced), headers, msg_id=msg_id)


def _checked(check, *args, msg_id):
    """``check(*args)``, a BoundsError turned into a Reject."""
    try:
        return check(*args)
    except bounds.BoundsError as exc:
        raise Reject(str(exc), msg_id)
