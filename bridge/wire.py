"""The body of a Zaqar message that the bridge or the guest driver posts.

Both sides of the bridge speak this one format (see doc/protocol.rst)::

    {"bridge": 1,                  # format version
     "id": "<stable id>",          # _unique_id, or a hash of the AMQP body
     "message": {...},             # the oslo.messaging message dict, intact
     "reply": {"queue": "...",     # present on a call: where to answer
               "token": "..."},
     "reply_token": "...",         # present on an answer to such a call
     "route": "...", "exchange": "...", "routing_key": "...",
     "encoding": "json"|"base64", "content_type": "..."}   # raw routes

``message`` holds exactly what oslo.messaging serializes inside its 2.0
envelope (``method``/``args``/``_context_*``..., or a notification, or a
reply ``result``/``failure``/``ending``/``_msg_id``).
"""

import base64
import hashlib
import json

from bridge import envelope

FORMAT = 1


class WireError(ValueError):
    """A Zaqar body that is not a bridge message."""


def stable_id(message, raw_body=None):
    """The id a receiver deduplicates on.

    oslo.messaging stamps every message with ``_unique_id``; for anything
    else, a SHA-256 of the raw AMQP body is just as stable across
    redeliveries.
    """
    if isinstance(message, dict) and isinstance(message.get('_unique_id'),
                                                str):
        return message['_unique_id']
    if raw_body is None:
        raw_body = json.dumps(message, sort_keys=True)
    if isinstance(raw_body, str):
        raw_body = raw_body.encode('utf-8')
    return hashlib.sha256(raw_body).hexdigest()


def body(message, msg_id=None, reply=None, reply_token=None, **extra):
    """Build a body; ``extra`` adds route/exchange/routing_key/... fields."""
    out = {'bridge': FORMAT,
           'id': msg_id or stable_id(message),
           'message': message}
    if reply is not None:
        out['reply'] = reply
    if reply_token is not None:
        out['reply_token'] = reply_token
    for key, value in extra.items():
        if value is not None:
            out[key] = value
    return out


def raw_message(payload, content_type=None):
    """Fields for a non-oslo AMQP body: JSON as is, anything else base64."""
    if isinstance(payload, str):  # py-amqp decodes utf-8 bodies
        payload = payload.encode('utf-8')
    if isinstance(payload, (bytes, bytearray)):
        try:
            return {'message': json.loads(payload.decode('utf-8')),
                    'encoding': 'json', 'content_type': content_type}
        except (UnicodeDecodeError, ValueError):
            return {'message': base64.b64encode(bytes(payload)).decode(),
                    'encoding': 'base64', 'content_type': content_type}
    return {'message': payload, 'encoding': 'json',
            'content_type': content_type}


def parse(data):
    """Validate a body read from Zaqar and return it as a dict.

    A plain oslo.messaging 2.0 envelope (``oslo.version``/``oslo.message``)
    is accepted too, as if it were ``{"message": <opened envelope>}``.
    """
    if isinstance(data, (str, bytes, bytearray)):
        try:
            data = envelope.loads(data)
        except envelope.EnvelopeError as exc:
            raise WireError(str(exc))
    if not isinstance(data, dict):
        raise WireError('message body is not a JSON object')
    if envelope.VERSION_KEY in data:
        try:
            return {'bridge': FORMAT, 'message': envelope.unwrap(data)}
        except envelope.EnvelopeError as exc:
            raise WireError(str(exc))
    if data.get('bridge') != FORMAT:
        raise WireError('not a bridge message (no "bridge": %d)' % FORMAT)
    if not isinstance(data.get('message'), dict) and \
            data.get('encoding') != 'base64':
        raise WireError('"message" is missing or not an object')
    for key in ('reply_token', 'id'):
        if key in data and not isinstance(data[key], str):
            raise WireError('"%s" must be a string' % key)
    reply = data.get('reply')
    if reply is not None and not (isinstance(reply, dict)
                                  and isinstance(reply.get('queue'), str)
                                  and isinstance(reply.get('token'), str)):
        raise WireError('"reply" must hold a queue and a token')
    return data
