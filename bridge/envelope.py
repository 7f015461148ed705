"""The oslo.messaging 2.0 message envelope and its packed context.

What an oslo.messaging (rabbit driver) client puts on the wire::

    {"oslo.version": "2.0",
     "oslo.message": "{\"method\": \"echo\", \"args\": {...},
                       \"_unique_id\": \"...\", \"_msg_id\": \"...\",
                       \"_reply_q\": \"reply_...\",
                       \"_context_project_id\": ...}"}

Requests and casts carry ``method``/``args``/``version``; notifications
carry ``event_type``/``payload``/``priority``; replies carry ``result``/
``failure``/``ending``.  The request context is flattened into
``_context_<key>`` keys.  This module only decodes and encodes; it never
decides whether a message may pass.
"""

import json

from bridge import jsoncodec

VERSION_KEY = 'oslo.version'
MESSAGE_KEY = 'oslo.message'
VERSION = '2.0'
CONTEXT_PREFIX = '_context_'


class EnvelopeError(ValueError):
    """A body that is not a usable oslo.messaging message."""


def loads(body):
    """Parse bytes/str/dict into a dict, raising EnvelopeError."""
    if isinstance(body, dict):
        return body
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode('utf-8')
        except UnicodeDecodeError as exc:
            raise EnvelopeError('body is not UTF-8: %s' % exc)
    if not isinstance(body, str):
        raise EnvelopeError('body is a %s, not JSON' % type(body).__name__)
    try:
        data = jsoncodec.loads(body)
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError('body is not JSON: %s' % (
            exc if isinstance(exc, ValueError) else 'nested too deeply'))
    if not isinstance(data, dict):
        raise EnvelopeError('body is JSON but not an object')
    return data


def unwrap(body):
    """Return the oslo message dict from a (possibly enveloped) body.

    A 2.0 envelope is opened; an object without one is taken as an
    un-enveloped (1.0) message, as oslo.messaging's ``deserialize_msg`` does.
    """
    data = loads(body)
    if VERSION_KEY not in data and MESSAGE_KEY not in data:
        return data
    if data.get(VERSION_KEY) != VERSION:
        raise EnvelopeError('unsupported oslo.version %r'
                            % (data.get(VERSION_KEY),))
    inner = data.get(MESSAGE_KEY)
    if not isinstance(inner, str):
        raise EnvelopeError('oslo.message is missing or not a string')
    msg = loads(inner)
    return msg


def wrap(message):
    """Serialize a message dict into a 2.0 envelope (a dict)."""
    return {VERSION_KEY: VERSION, MESSAGE_KEY: json.dumps(message)}


def context(message):
    """The unpacked request context of a message, as a dict."""
    return {key[len(CONTEXT_PREFIX):]: value
            for key, value in message.items()
            if key.startswith(CONTEXT_PREFIX)}


def kind(message):
    """'rpc', 'notification' or 'reply' for an oslo message dict."""
    if 'method' in message:
        if not isinstance(message['method'], str) or not message['method']:
            raise EnvelopeError('method must be a non-empty string')
        if not isinstance(message.get('args', {}), dict):
            raise EnvelopeError('args must be an object')
        return 'rpc'
    if 'event_type' in message and 'payload' in message:
        return 'notification'
    if 'result' in message or 'failure' in message:
        return 'reply'
    raise EnvelopeError('neither an RPC request (method), a notification '
                        '(event_type, payload) nor a reply (result, failure)')
