"""Zaqar clients, one per project, reused for every request.

python-zaqarclient builds a new transport (and ``requests`` session) for
every call; :class:`Client` keeps the first one so connections are reused.
How the bridge authenticates is set in ``[zaqar]``:

* ``auth_strategy = noauth``: a zaqar-server without authentication (tests,
  development).  The project of each request is sent in ``X-Project-ID``.
* ``auth_strategy = keystone``: a keystoneauth1 session built from the
  ``[zaqar]`` auth options (``auth_type``, ``auth_url``, ``username``...).
  The token is cached and refreshed by keystoneauth before it expires; no
  request pays for an authentication round trip.  Every queue then lives in
  the project of that session (the "service project" mode): use a
  ``zaqar_queue`` template that contains ``{tenant}``.
"""

import functools
import threading

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
import requests
from zaqarclient.queues.v2 import client as zclient
from zaqarclient.transport import errors as zerrors

GROUP = 'zaqar'

OPTS = [
    cfg.URIOpt('url', schemes=['http', 'https'],
               default='http://127.0.0.1:8888',
               help='Endpoint of the Zaqar API (without the /v2 suffix).'),
    cfg.StrOpt('auth_strategy', default='noauth',
               choices=[('noauth', 'zaqar-server without authentication; '
                         'the project is sent in X-Project-ID'),
                        ('keystone', 'keystoneauth1 session from the auth '
                         'options of this group')],
               help='How the bridge authenticates to Zaqar.'),
    cfg.StrOpt('project_id', default='amqp-zaqar-bridge',
               help='With auth_strategy = noauth: the project of the '
                    'bridge\'s own queues (health checks).'),
    cfg.IntOpt('max_messages_post_size', default=262144, min=1024,
               help='Largest request body zaqar-server accepts for one '
                    'POST of messages (its [transport] '
                    'max_messages_post_size). A single message larger than '
                    'this is dead-lettered; batches are cut below it.'),
    cfg.FloatOpt('request_timeout', default=30.0, min=0.1,
                 help='Seconds before a Zaqar request is abandoned and '
                      'retried.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    ks_loading.register_session_conf_options(conf, GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)


def list_opts():
    return (OPTS
            + ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password'))


# Errors that mean "this request can never succeed as it is".
PERMANENT_ERRORS = (zerrors.MalformedRequest, zerrors.ForbiddenError,
                    zerrors.ResourceNotFound, zerrors.ConflictError)
# Errors worth retrying: the server or the network is not there right now.
TRANSIENT_ERRORS = (zerrors.TransportError, requests.RequestException,
                    ConnectionError, TimeoutError, OSError)


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
                self._transport = transport
            return self._transport

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


class Clients:
    """Hands out the cached client for a project."""

    def __init__(self, conf):
        self.conf = conf
        self.group = conf[GROUP]
        self._clients = {}
        self._lock = threading.Lock()
        self._session = None
        if self.group.auth_strategy == 'keystone':
            auth = ks_loading.load_auth_from_conf_options(conf, GROUP)
            self._session = ks_loading.load_session_from_conf_options(
                conf, GROUP, auth=auth)

    @property
    def service_project(self):
        if self._session is not None:
            return self._session.get_project_id()
        return self.group.project_id

    def project_of(self, tenant):
        """The Zaqar project that holds ``tenant``'s queues."""
        if self._session is not None:
            return self.service_project
        return tenant

    def for_project(self, project):
        with self._lock:
            client = self._clients.get(project)
            if client is None:
                client = self._new_client(project)
                self._clients[project] = client
            return client

    def _new_client(self, project):
        if self._session is None:
            return noauth_client(self.group.url, project,
                                 request_timeout=self.group.request_timeout)
        return Client(self.group.url, version=2,
                      conf={'auth_opts': {'backend': 'keystone',
                                          'options': {}}},
                      session=self._session,
                      request_timeout=self.group.request_timeout)

    def check(self):
        """Raise when Zaqar can't be reached (used at start-up)."""
        client = self.for_project(self.service_project)
        client.queues(limit=1)
