"""A Zaqar message read from a tenant's queue -> what to publish on AMQP.

The tenant is the project of the queue the message was read from, never
a value of the body.  No message nests more than ``max_depth`` levels.
On ``envelope = oslo`` routes:

* an answer to a controller's call must carry a valid ``reply_token``
  issued for this tenant and for the queue it was read from; it is
  published to the caller's reply queue: one final answer per token, and
  before it only heartbeats the caller asked for (:func:`_reply`);
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
import uuid

from bridge import bounds
from bridge import context
from bridge import envelope
from bridge import naming
from bridge import tokens
from bridge.reject import Reject
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
        return _reply(conf, tenant, queue, data['reply_token'], message,
                      headers, msg_id, used_tokens)
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
        forced.update(_call_address(route, conf, tenant, message, msg_id))
    return Publish(kind, route.exchange, route.routing_key,
                   envelope.wrap(forced), headers, msg_id=msg_id)


def _checked(check, *args, msg_id):
    """``check(*args)``, a BoundsError turned into a Reject."""
    try:
        return check(*args)
    except bounds.BoundsError as exc:
        raise Reject(str(exc), msg_id)


def _call_address(route, conf, tenant, message, msg_id):
    """Let the controller's answer to a guest's call come back."""
    reply_q = message.get('_reply_q')
    if not isinstance(message['_msg_id'], str) or not naming.is_valid(
            reply_q):
        raise Reject('a call needs a string _msg_id and a Zaqar queue name '
                     'in _reply_q (got %r)' % (reply_q,), msg_id)
    if not route.guest_reply_pattern.matches(reply_q, tenant):
        raise Reject('_reply_q %r is not a reply queue of tenant %s (route '
                     '%s guest_reply_queue = %s)'
                     % (reply_q, tenant, route.name,
                        route.guest_reply_queue), msg_id)
    ttl = min(conf.rpc.reply_token_ttl,
              conf.rpc.guest_call_timeout + conf.rpc.reply_grace)
    token = tokens.sign(conf.rpc.reply_secret, tokens.ZAQAR_REPLY, reply_q,
                        message['_msg_id'], tenant, ttl)
    return {'_msg_id': token, '_reply_q': conf.rpc.amqp_reply_queue}


# Fewest seconds between two heartbeats passed for one call: a quarter of
# the caller's call-monitor timeout (an oslo.messaging server sends one
# every half), and never more than one a second.
MIN_HEARTBEAT_GAP = 1.0


def _reply(conf, tenant, queue, token, message, headers, msg_id,
           used_tokens):
    """The answer to a controller's call, in the shape a rabbit server sends.

    Checks only (``used_tokens`` is read, never written): the caller of
    :func:`translate` records ``Publish.answer`` in ``used_tokens`` once
    RabbitMQ confirmed it.  Per token, one final answer passes; before
    it, heartbeats (``ending: false``) pass only if the caller gave a
    call-monitor timeout (oslo.messaging's reply waiter fails on one it
    did not ask for), at most one every :data:`MIN_HEARTBEAT_GAP` seconds
    or a quarter of that timeout, rebuilt as ``{"result": null,
    "failure": null, "ending": false}``.  Anything else is rejected.
    """
    try:
        address = tokens.verify(conf.rpc.reply_secret, tokens.AMQP_REPLY,
                                token, tenant=tenant)
        if address['answer_queue'] != queue:
            raise tokens.TokenError('reply token is for answers read from '
                                    'queue %r, not %r'
                                    % (address['answer_queue'], queue))
        if used_tokens is not None:
            used_tokens.check_unanswered(token)
    except tokens.TokenError as exc:
        raise Reject('answer rejected: %s' % exc, msg_id)
    ending = message.get('ending', True)
    if not isinstance(ending, bool):
        raise Reject('answer rejected: "ending" must be true or false',
                     msg_id)
    result, failure = message.get('result'), message.get('failure')
    if ending:
        if failure is not None and not isinstance(failure, str):
            raise Reject('answer rejected: failure must be a serialized '
                         'oslo.messaging exception (a string)', msg_id)
    elif result is not None or failure is not None:
        raise Reject('answer rejected: a heartbeat ("ending": false) '
                     'carries no result nor failure', msg_id)
    elif address['monitor'] < 2:
        raise Reject('answer rejected: a heartbeat ("ending": false) for a '
                     'call without a call-monitor timeout', msg_id)
    elif used_tokens is not None:
        try:
            used_tokens.check_heartbeat(token, max(
                MIN_HEARTBEAT_GAP, address['monitor'] / 4.0))
        except tokens.TokenError as exc:
            raise Reject('answer rejected: %s' % exc, msg_id)
    reply = {'result': result, 'failure': failure, 'ending': ending,
             '_msg_id': address['msg_id'],
             '_unique_id': uuid.uuid4().hex}
    return Publish('reply', '', address['queue'], envelope.wrap(reply),
                   headers, mandatory=True, msg_id=msg_id,
                   answer=(token, address['expires'], ending))
