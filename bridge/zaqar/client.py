"""A Zaqar client that reuses its connection, and the errors it raises.

python-zaqarclient builds a new transport (and ``requests`` session) for
every call; :class:`Client` keeps the first one so connections are reused.
It takes explicit parameters only (no configuration): the ``[zaqar]``
options are bridge/zaqar/options.py, and bridge/zaqar/clients.py builds
one client per project from them.

A Zaqar 401 drops the cached token of that client, so the next request
authenticates again.  Keystone failures surface as zaqarclient errors:
:class:`trusts.AccessError` (a 403: this project can't be reached, its
messages are dead-lettered) or transient ones (retried).
"""

import functools
import threading

from keystoneauth1 import exceptions as ks_exc
import requests
from zaqarclient.queues.v2 import client as zclient
from zaqarclient.transport import errors as zerrors

from bridge.zaqar import trusts as zaqar_trusts

# Errors that mean "this request can never succeed as it is".
PERMANENT_ERRORS = (zerrors.MalformedRequest, zerrors.ForbiddenError,
                    zerrors.ResourceNotFound, zerrors.ConflictError)
# Errors worth retrying: the server or the network is not there right now.
TRANSIENT_ERRORS = (zerrors.TransportError, requests.RequestException,
                    ConnectionError, TimeoutError, OSError)
# Raised (as a PERMANENT_ERRORS 403) for a project the bridge can't reach.
AccessError = zaqar_trusts.AccessError


class Client(zclient.Client):
    """A zaqarclient Client that reuses one transport for all requests."""

    def __init__(self, *args, request_timeout=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._transport = None
        self._timeout = request_timeout
        self._lock = threading.Lock()

    def _get_transport(self, request):
        with self._lock:
            if self._transport is None:
                transport = super()._get_transport(request)
                http = getattr(transport, 'client', None)
                if self._timeout and http is not None:
                    # zaqarclient sends with no timeout at all; a hung
                    # server would hang the worker with it.
                    http.request = functools.partial(http.request,
                                                     timeout=self._timeout)
                transport.send = functools.partial(self._send,
                                                   transport.send)
                self._transport = transport
            return self._transport

    def _request_and_transport(self):
        # zaqarclient asks the session for its token here.
        try:
            return super()._request_and_transport()
        except ks_exc.ClientException as exc:
            raise zaqar_trusts.keystone_error(exc)

    def _send(self, send, request):
        try:
            return send(request)
        except zerrors.UnauthorizedError:
            # Revoked (a deleted trust) or expired early: drop the token.
            invalidate = getattr(self.session, 'invalidate', None)
            if invalidate is not None:
                invalidate()
            raise

    def queue(self, ref, **kwargs):
        # Zaqar v2 creates queues on first post: skip the extra PUT.
        kwargs.setdefault('auto_create', False)
        return super().queue(ref, **kwargs)


def noauth_client(url, project, client_id=None, request_timeout=None):
    conf = {'auth_opts': {'backend': 'noauth',
                          'options': {'os_project_id': project}}}
    if client_id:
        conf['client_uuid'] = client_id
    return Client(url, version=2, conf=conf, request_timeout=request_timeout)
