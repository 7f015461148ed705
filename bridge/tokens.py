"""Signed reply addresses, so any bridge worker can route a reply.

An RPC ``call()`` that crosses the bridge needs its answer routed back to
the caller.  Instead of remembering callers in memory (lost on restart,
invisible to the other controllers), the bridge hands out a token that
carries the address and is signed with ``[rpc] reply_secret``::

    base64url(json payload) "." base64url(HMAC-SHA256(secret, kind|payload))

The payload holds the destination, the msg id, the tenant the call belongs
to and an expiry; an ``amqp-reply`` token also names the Zaqar queue the
answer must be read from (the forward route's ``reply_queue``, so it is
refused on any other route) and the caller's call-monitor timeout (whether
the caller accepts heartbeats, ``ending: false``).  ``kind`` separates
the two directions so a token issued for one can never be used for the
other:

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


def sign(secret, kind, queue, msg_id, tenant, ttl, now=None,
         answer_queue=None, monitor=0):
    """Issue a token for ``msg_id`` answered into ``queue`` for ``tenant``.

    ``answer_queue``: the only Zaqar queue the answer may be read from.
    ``monitor``: the caller's call-monitor timeout in seconds (0: none, so
    the caller takes no heartbeat).
    """
    if not secret:
        raise TokenError('no reply secret configured ([rpc] reply_secret)')
    now = time.time() if now is None else now
    data = {'q': queue, 'm': msg_id, 't': tenant, 'e': int(now + ttl)}
    if answer_queue is not None:
        data['z'] = answer_queue
    if monitor:
        data['h'] = int(monitor)
    payload = json.dumps(data, sort_keys=True,
                         separators=(',', ':')).encode()
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
        answer_queue, monitor = data.get('z'), data.get('h', 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TokenError('reply token payload malformed')
    now = time.time() if now is None else now
    if not isinstance(expiry, int) or expiry < now:
        raise TokenError('reply token expired')
    if tenant is not None and owner != tenant:
        raise TokenError('reply token belongs to another tenant')
    return {'queue': queue, 'msg_id': msg_id, 'tenant': owner,
            'expires': expiry, 'answer_queue': answer_queue,
            'monitor': monitor if isinstance(monitor, int) else 0}


class UsedTokens:
    """What this process published for each reply token, until it expires.

    A token gets at most one final answer; before it, heartbeats
    (``ending: false``) at most one every ``gap`` seconds.  The checks
    read only; :meth:`published` records an answer once RabbitMQ
    confirmed it, so an answer that was refused or never published leaves
    the token usable.

    One memory per worker process (bridge.rpc.relay.USED), shared by all
    its routes: a tenant's queues always go to the same worker of a route
    (bridge.flows.reverse.worker_of), and a token is only accepted from
    the one Zaqar queue it names.  Not shared between processes: after a
    worker restarts, or across two bridges draining the same queue, a
    replay can reach the caller, whose oslo.messaging reply waiter drops
    an answer for a msg id it no longer waits for.
    """

    def __init__(self, limit=100000):
        # token -> (expiry, when published): final answers, heartbeats
        self._final = {}
        self._beats = {}
        self._limit = limit

    def check_unanswered(self, token):
        """Raise TokenError if ``token``'s final answer was published."""
        if token in self._final:
            raise TokenError('reply token already answered (replay): '
                             'one final answer per call')

    def check_heartbeat(self, token, gap, now=None):
        """Raise TokenError if the last heartbeat is not ``gap`` s old."""
        self.check_unanswered(token)
        now = time.time() if now is None else now
        last = self._beats.get(token)
        if last is not None and now - last[1] < gap:
            raise TokenError('heartbeat %.1fs after the previous one for '
                             'this call (at most one every %.1fs)'
                             % (max(0.0, now - last[1]), gap))

    def published(self, token, expires, final, now=None):
        """RabbitMQ confirmed an answer for ``token``."""
        now = time.time() if now is None else now
        if final:
            self._beats.pop(token, None)
        memory = self._final if final else self._beats
        if len(memory) >= self._limit:
            for old in [t for t, (e, _) in memory.items() if e < now]:
                del memory[old]
            if len(memory) >= self._limit:
                memory.pop(next(iter(memory)))
        memory[token] = (expires, now)
