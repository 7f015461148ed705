"""Signed reply addresses, so any bridge worker can route a reply.

An RPC ``call()`` that crosses the bridge needs its answer routed back to
the caller.  Instead of remembering callers in memory (lost on restart,
invisible to the other controllers), the bridge hands out a token that
carries the address and is signed with ``[rpc] reply_secret``::

    base64url(json payload) "." base64url(HMAC-SHA256(secret, kind|payload))

The payload holds the destination, the msg id, the tenant the call belongs
to and an expiry.  ``kind`` separates the two directions so a token issued
for one can never be used for the other:

* ``amqp-reply``: a controller called a guest; the guest's answer goes to
  the AMQP reply queue in the token.
* ``zaqar-reply``: a guest called a controller; the answer goes to the
  guest's Zaqar reply queue in the token's project.
"""

import base64
import hashlib
import hmac
import json
import time

AMQP_REPLY = 'amqp-reply'
ZAQAR_REPLY = 'zaqar-reply'
MAX_TOKEN_LENGTH = 4096


class TokenError(ValueError):
    """A token that is forged, expired, malformed or for someone else."""


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _unb64(text):
    pad = '=' * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def _mac(secret, kind, payload):
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    return hmac.new(secret, kind.encode('ascii') + b'|' + payload,
                    hashlib.sha256).digest()


def sign(secret, kind, queue, msg_id, tenant, ttl, now=None):
    """Issue a token for ``msg_id`` answered into ``queue`` for ``tenant``."""
    if not secret:
        raise TokenError('no reply secret configured ([rpc] reply_secret)')
    now = time.time() if now is None else now
    payload = json.dumps({'q': queue, 'm': msg_id, 't': tenant,
                          'e': int(now + ttl)},
                         sort_keys=True, separators=(',', ':')).encode()
    return '%s.%s' % (_b64(payload), _b64(_mac(secret, kind, payload)))


def verify(secret, kind, token, tenant=None, now=None):
    """Check a token and return its payload as a dict.

    ``tenant``, when given, must be the project the token was issued for
    (the project of the queue the reply was read from).  Raises TokenError
    naming what is wrong.
    """
    if not secret:
        raise TokenError('no reply secret configured ([rpc] reply_secret)')
    if not isinstance(token, str) or not token:
        raise TokenError('reply token missing or not a string')
    if len(token) > MAX_TOKEN_LENGTH or token.count('.') != 1:
        raise TokenError('reply token malformed')
    head, _, tail = token.partition('.')
    try:
        payload = _unb64(head)
        mac = _unb64(tail)
    except (ValueError, TypeError):
        raise TokenError('reply token malformed')
    if not hmac.compare_digest(mac, _mac(secret, kind, payload)):
        raise TokenError('reply token signature invalid')
    if _b64(payload) != head or _b64(mac) != tail:
        # Base64 lets the last character's unused bits vary: one token,
        # several spellings, and a replay check keyed by the string would
        # miss the others.
        raise TokenError('reply token malformed (not canonical)')
    try:
        data = json.loads(payload)
        queue, msg_id, owner, expiry = (data['q'], data['m'], data['t'],
                                        data['e'])
    except (ValueError, KeyError, TypeError):
        raise TokenError('reply token payload malformed')
    now = time.time() if now is None else now
    if not isinstance(expiry, int) or expiry < now:
        raise TokenError('reply token expired')
    if tenant is not None and owner != tenant:
        raise TokenError('reply token belongs to another tenant')
    return {'queue': queue, 'msg_id': msg_id, 'tenant': owner,
            'expires': expiry}


class UsedTokens:
    """Remembers tokens already answered, until they expire.

    It lets a worker refuse a replayed reply.  It is per process: a replay
    handled by another worker reaches the caller, whose oslo.messaging
    reply waiter drops an answer for a msg id it is no longer waiting for.
    """

    def __init__(self, limit=100000):
        self._seen = {}
        self._limit = limit

    def check_and_add(self, token, expires, now=None):
        now = time.time() if now is None else now
        if len(self._seen) >= self._limit:
            self._seen = {t: e for t, e in self._seen.items() if e >= now}
            if len(self._seen) >= self._limit:
                self._seen.pop(next(iter(self._seen)))
        if token in self._seen:
            raise TokenError('reply token already used (replay)')
        self._seen[token] = expires
