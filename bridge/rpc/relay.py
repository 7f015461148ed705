"""The reply relay: which token each call gets, and what each answer must
prove.  Pure: no I/O, the flows call it through bridge/translate.

A controller's ``call()`` to a guest (forward): :func:`call_to_guest`
adds ``reply = {queue, token}``, the token (bridge/tokens.py) signing the
caller's ``_reply_q``, ``_msg_id``, the tenant, the Zaqar queue the answer
must come from, the call-monitor timeout and an expiry.  The guest's
answer, read from that queue in its own project, passes
:func:`answer_from_guest` and goes to the caller's reply queue, exactly
as an oslo.messaging server would send it.

A guest's ``call()`` to a controller (reverse): :func:`call_from_guest`
replaces ``_msg_id`` with a token that signs the guest's queue, msg id
and project, and ``_reply_q`` with ``[rpc] amqp_reply_queue``, a durable
queue every bridge worker consumes (the replies route,
bridge/rpc/replies.py).  Whichever worker gets the answer checks the
token (:func:`guest_reply_address`) and posts it into the guest's queue.
No worker keeps state besides :data:`USED`: any bridge on any controller
can route any reply.
"""

import math
import uuid

from bridge import naming
from bridge.reject import Reject
from bridge import tokens

# What this worker process published for each token (a forked worker
# starts empty: the manager never answers anything); see
# tokens.UsedTokens.
USED = tokens.UsedTokens()


def call_to_guest(route, conf, tenant, message, properties, msg_id):
    """``reply = {queue, token}`` for a controller's call, or None when
    ``message`` is no call."""
    if not (message.get('_msg_id') and message.get('_reply_q')):
        return None
    if not isinstance(message['_reply_q'], str) or \
            not isinstance(message['_msg_id'], str):
        raise Reject('_msg_id and _reply_q must be strings', msg_id)
    try:
        reply_queue = naming.render(route.reply_queue, tenant=tenant,
                                    route=route.name)
    except naming.QueueNameError as exc:
        raise Reject('reply_queue: %s' % exc, msg_id)
    token = tokens.sign(conf.rpc.reply_secret, tokens.AMQP_REPLY,
                        message['_reply_q'], message['_msg_id'], tenant,
                        _expiry_seconds(properties, message, conf.rpc),
                        answer_queue=reply_queue,
                        monitor=_call_monitor(message))
    return {'queue': reply_queue, 'token': token}


def _expiry_seconds(properties, message, rpc_conf):
    """How long the caller waits: AMQP expiration (ms) or _timeout (s)."""
    ttl = rpc_conf.reply_token_ttl
    expiration = properties.get('expiration')
    try:
        if expiration:
            ttl = min(ttl, float(expiration) / 1000.0 + rpc_conf.reply_grace)
        elif message.get('_timeout'):
            ttl = min(ttl, float(message['_timeout']) + rpc_conf.reply_grace)
    except (TypeError, ValueError):
        pass
    if not math.isfinite(ttl):   # "-inf", "nan" from a broken client
        ttl = rpc_conf.reply_token_ttl
    return max(1, int(ttl))


def _call_monitor(message):
    """The caller's call-monitor timeout in whole seconds, or 0.

    oslo.messaging sends it as ``_timeout``; its server heartbeats a call
    every half of ``int(_timeout)`` when that is at least 1 s.
    """
    try:
        monitor = int(message.get('_timeout') or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(monitor, 2 ** 31) if monitor >= 2 else 0


def guest_reply_address(conf, message, msg_id):
    """The guest's queue, project and msg id of a controller's answer to
    a guest's call; its ``_msg_id`` is the token :func:`call_from_guest`
    made."""
    try:
        address = tokens.verify(conf.rpc.reply_secret, tokens.ZAQAR_REPLY,
                                message.get('_msg_id'))
    except tokens.TokenError as exc:
        raise Reject('reply to a guest call: %s' % exc, msg_id)
    if not naming.is_valid(address['queue']):
        raise Reject('reply queue %r is not a Zaqar queue name'
                     % (address['queue'],), msg_id)
    return address


def call_from_guest(route, conf, tenant, message, msg_id):
    """A guest's call: the ``_msg_id`` and ``_reply_q`` that let the
    controller's answer come back (a token signing the guest's queue)."""
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


def answer_from_guest(conf, tenant, queue, token, message, msg_id,
                      used_tokens):
    """The answer to a controller's call, in the shape a rabbit server sends.

    Checks only (``used_tokens`` is read, never written): the caller of
    :func:`bridge.translate.to_amqp.translate` records the answer this
    returns (``Publish.answer``) in ``used_tokens`` once RabbitMQ
    confirmed it.  Per token, one final answer passes; before it,
    heartbeats (``ending: false``) pass only if the caller gave a
    call-monitor timeout (oslo.messaging's reply waiter fails on one it
    did not ask for), at most one every :data:`MIN_HEARTBEAT_GAP` seconds
    or a quarter of that timeout, rebuilt as ``{"result": null,
    "failure": null, "ending": false}``.  Anything else is rejected.
    Returns the reply to publish, the token's address and the answer to
    record: ``(token, expiry, final)``.
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
    return reply, address, (token, address['expires'], ending)
