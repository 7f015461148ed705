"""A Zaqar client that reuses its connection, and the errors it raises.

:class:`Client` is bridge/zaqar_http.py's client, which reuses its
connection (python-zaqarclient builds a new one for every call).  It
takes explicit parameters only (no configuration): the ``[zaqar]``
options are bridge/zaqar/options.py, and bridge/zaqar/clients.py builds
one client per project from them.

Keystone failures surface as zaqarclient errors:
:class:`trusts.AccessError` (a 403: this project can't be reached, its
messages are dead-lettered) or transient ones (retried).
"""

from keystoneauth1 import exceptions as ks_exc
import requests
from zaqarclient.transport import errors as zerrors

from bridge.zaqar import trusts as zaqar_trusts
from bridge import zaqar_http

PERMANENT_ERRORS = zaqar_http.PERMANENT_ERRORS
# Errors worth retrying: the server or the network is not there right now.
TRANSIENT_ERRORS = (zerrors.TransportError, requests.RequestException,
                    ConnectionError, TimeoutError, OSError)
# Raised (as a PERMANENT_ERRORS 403) for a project the bridge can't reach.
AccessError = zaqar_trusts.AccessError
# Zaqar answered 503: e.g. Zaqar 23's Redis store failing a queue's stats.
UnavailableError = zerrors.ServiceUnavailableError


class Client(zaqar_http.Client):
    """The shared reusing client; Keystone failures as zaqarclient errors.

    ``shared``: another Client whose transport (HTTP session and its
    connections) this one uses.  A transport holds no credentials (each
    request carries its own project and token), so the clients of
    thousands of projects need only one: a ``requests`` session costs
    ~7 KiB.
    """

    def __init__(self, *args, shared=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._shared = shared
        if shared is not None:
            self._no_proxy = shared._no_proxy
            self._direct_conns = shared._direct_conns

    def _get_transport(self, request):
        if self._shared is not None:
            return self._shared._get_transport(request)
        return super()._get_transport(request)

    def _send(self, send, request):
        # The transport may be shared: a 401 drops the token of the
        # session that made this request, not the transport owner's.
        try:
            return send(request)
        except zerrors.UnauthorizedError:
            session = getattr(request, 'session', None) or self.session
            invalidate = getattr(session, 'invalidate', None)
            if invalidate is not None:
                invalidate()
            raise

    def _request_and_transport(self):
        # zaqarclient asks the session for its token here.
        try:
            return super()._request_and_transport()
        except ks_exc.ClientException as exc:
            raise zaqar_trusts.keystone_error(exc)


def noauth_client(url, project, client_id=None, request_timeout=None,
                  shared=None):
    conf = {'auth_opts': {'backend': 'noauth',
                          'options': {'os_project_id': project}}}
    if client_id:
        conf['client_uuid'] = client_id
    return Client(url, version=2, conf=conf, request_timeout=request_timeout,
                  shared=shared)
