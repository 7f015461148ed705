"""Zaqar clients, one per project, reused for every request.

python-zaqarclient builds a new transport (and ``requests`` session) for
every call; :class:`Client` keeps the first one so connections are reused.
How the bridge authenticates is set in ``[zaqar]``:

* ``auth_strategy = noauth``: a zaqar-server without authentication (tests,
  development).  The project of each request is sent in ``X-Project-ID``;
  each tenant's queues live in the tenant's project.
* ``auth_strategy = keystone``: keystoneauth1 sessions built from the
  ``[zaqar]`` auth options (``auth_type``, ``auth_url``, ``username``...).
  Tokens are cached and refreshed by keystoneauth before they expire; no
  request pays for an authentication round trip.  ``tenant_access`` says
  where each tenant's queues live:

  - ``service_project``: every queue lives in the bridge's own project;
    tenants are kept apart only by queue names, so every ``zaqar_queue``
    template must contain ``{tenant}``, and guests get pre-signed URLs
    limited to their own queues;
  - ``trusts``: each tenant's queues live in the tenant's project and are
    reached with a trust-scoped token (bridge/zaqar/trusts.py).

A Zaqar 401 drops the cached token of that client, so the next request
authenticates again.  Keystone failures surface as zaqarclient errors:
:class:`trusts.AccessError` (a 403: this project can't be reached, its
messages are dead-lettered) or transient ones (retried).
"""

import functools
import threading

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
import requests
from zaqarclient.queues.v2 import client as zclient
from zaqarclient.transport import errors as zerrors

from bridge.zaqar import trusts as zaqar_trusts

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
    cfg.StrOpt('tenant_access', default='service_project',
               choices=[('service_project', 'every queue lives in the '
                         'project of the bridge\'s own token; tenants are '
                         'told apart by queue name only ({tenant} required '
                         'in every zaqar_queue template); guests use '
                         'pre-signed URLs limited to their queues'),
                        ('trusts', 'each tenant\'s queues live in its own '
                         'project, reached with a token scoped by a trust '
                         'from a user of that project to the bridge\'s '
                         'user')],
               help='With auth_strategy = keystone: where each tenant\'s '
                    'queues live and how the bridge reaches them.'),
    cfg.DictOpt('trusts', default={},
                help='With tenant_access = trusts: project id -> trust id. '
                     'A project not listed uses the newest unexpired trust '
                     'whose trustee is the bridge\'s user, found through '
                     'the Keystone API.'),
    cfg.IntOpt('trust_recheck_interval', default=60, min=1,
               help='With tenant_access = trusts: seconds the bridge waits '
                    'before asking Keystone again for a project whose '
                    'trust was missing or refused (its messages are '
                    'dead-lettered meanwhile).'),
    # Not "project_id": the keystone password plugin has that option.
    cfg.StrOpt('noauth_project_id', default='amqp-zaqar-bridge',
               help='With auth_strategy = noauth: the project of the '
                    'bridge\'s own queues (health checks). With keystone, '
                    'the bridge\'s token is scoped by project_name or '
                    'project_id.'),
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


# project_of() in service_project mode: the bridge's own project, whatever
# id Keystone gives it (asked only when a request needs a token).
OWN_PROJECT = '(bridge project)'


class Clients:
    """Hands out the cached client for a project."""

    def __init__(self, conf):
        self.conf = conf
        self.group = conf[GROUP]
        self._clients = {}
        self._lock = threading.Lock()
        self._session = None
        self._trusts = None
        if self.group.auth_strategy == 'keystone':
            auth = ks_loading.load_auth_from_conf_options(conf, GROUP)
            self._session = ks_loading.load_session_from_conf_options(
                conf, GROUP, auth=auth)
            if self.group.tenant_access == 'trusts':
                self._trusts = zaqar_trusts.Trusts(conf, GROUP,
                                                   self._session)

    def trusted_projects(self):
        """Projects with a usable trust for the bridge (tenant_access =
        trusts); raises a TRANSIENT_ERRORS error when Keystone fails."""
        if self._trusts is None:
            return set()
        return self._trusts.projects()

    @property
    def service_project(self):
        """The id of the bridge's own project."""
        if self._session is None:
            return self.group.noauth_project_id
        try:
            return self._session.get_project_id()
        except ks_exc.ClientException as exc:
            raise zaqar_trusts.keystone_error(exc)

    def project_of(self, tenant):
        """The Zaqar project that holds ``tenant``'s queues.

        The tenant's own project, except with tenant_access =
        service_project (:data:`OWN_PROJECT`).
        """
        if self._session is not None and self._trusts is None:
            return OWN_PROJECT
        return tenant

    def for_project(self, project):
        """The client for ``project``; it authenticates on first use."""
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
        session = self._session
        if self._trusts is not None and project != OWN_PROJECT:
            session = self._trusts.session_for(project)
        return Client(self.group.url, version=2,
                      conf={'auth_opts': {'backend': 'keystone',
                                          'options': {}}},
                      session=session,
                      request_timeout=self.group.request_timeout)

    def check(self):
        """Raise when Zaqar can't be reached (used at start-up)."""
        own = OWN_PROJECT
        if self._session is None:
            own = self.group.noauth_project_id
        self.for_project(own).queues(limit=1)


def check_conf(conf, routes):
    """One line naming the [zaqar] option that can't work, or None."""
    group = conf[GROUP]
    keystone = group.auth_strategy == 'keystone'
    for route in routes:
        if route.tenant_discovery == 'trusts' and not (
                keystone and group.tenant_access == 'trusts'):
            return ('route %r option \'tenant_discovery\': trusts needs '
                    '[zaqar] auth_strategy = keystone and tenant_access = '
                    'trusts' % route.name)
    if not keystone:
        return None
    if group.tenant_access == 'trusts':
        if group.auth_type not in ('password', 'v3password'):
            return ('[zaqar] auth_type: tenant_access = trusts needs a '
                    'user\'s password (auth_type = password), got %r'
                    % (group.auth_type,))
        return None
    for route in routes:
        for option in _tenant_templates(route):
            value = getattr(route, option)
            if '{tenant}' not in value:
                return ('route %r option %r: with [zaqar] tenant_access = '
                        'service_project every tenant\'s queues share the '
                        'bridge\'s project, so it must contain {tenant} '
                        '(got %r)' % (route.name, option, value))
    return None


def _tenant_templates(route):
    """The options of ``route`` naming queues of one tenant."""
    yield 'zaqar_queue'
    if route.envelope != 'oslo':
        return
    if route.direction == 'to_zaqar':
        yield 'reply_queue'     # where guests answer controllers' calls
    elif route.allowed_methods:
        yield 'guest_reply_queue'   # where guests' calls are answered
