"""One python-zaqarclient client that reuses its connection (no config).

python-zaqarclient builds a new transport (and ``requests`` session) for
every call.  :class:`Client` keeps the first one, so connections are
reused, and:

* gives every request a timeout (zaqarclient sends with none, and a hung
  server would hang the caller with it);
* keeps ``pool_size`` connections open per host (None: requests' default);
* drops the session's token on a 401 (revoked or expired early), so the
  next request authenticates again;
* never PUTs a queue before using it (Zaqar v2 creates queues on first
  post).

The bridge's Zaqar adapter (bridge/zaqar/client.py) and the guest driver
(bridge/drivers/zaqar/transport.py) both build on it; it imports nothing
of either.
"""

import functools
import threading

from requests import adapters
from zaqarclient.queues.v2 import client as zclient
from zaqarclient.transport import errors as zerrors

# Errors that mean "this request can never succeed as it is".
PERMANENT_ERRORS = (zerrors.MalformedRequest, zerrors.ForbiddenError,
                    zerrors.ResourceNotFound, zerrors.ConflictError)


class Client(zclient.Client):
    """A zaqarclient v2 Client that reuses one transport for everything."""

    def __init__(self, *args, request_timeout=None, pool_size=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self._timeout = request_timeout
        self._pool_size = pool_size
        self._transport = None
        self._lock = threading.Lock()

    def _get_transport(self, request):
        with self._lock:
            if self._transport is None:
                transport = super()._get_transport(request)
                http = getattr(transport, 'client', None)
                if http is not None and self._pool_size:
                    pool = adapters.HTTPAdapter(
                        pool_connections=1, pool_maxsize=self._pool_size)
                    http.session.mount('http://', pool)
                    http.session.mount('https://', pool)
                if http is not None and self._timeout:
                    http.request = functools.partial(http.request,
                                                     timeout=self._timeout)
                transport.send = functools.partial(self._send,
                                                   transport.send)
                self._transport = transport
            return self._transport

    def _send(self, send, request):
        try:
            return send(request)
        except zerrors.UnauthorizedError:
            invalidate = getattr(self.session, 'invalidate', None)
            if invalidate is not None:
                invalidate()
            raise

    def queue(self, ref, **kwargs):
        kwargs.setdefault('auto_create', False)
        return super().queue(ref, **kwargs)
