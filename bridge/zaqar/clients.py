"""Zaqar clients built from ``[zaqar]``, one per project, reused.

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

All clients share one transport (HTTP session and connections): a
request carries its own project and token, and a ``requests`` session
costs ~7 KiB, which at 10,000 tenant queues was most of a worker's
memory.  With noauth a project's client holds nothing but its project, so
none is kept: one is made per use.  With Keystone, a project's client is
kept (with trusts, its trust-scoped session caches the token).

A Zaqar 401 drops the cached token of the session that made the request,
so the next request authenticates again.  Keystone failures surface as
zaqarclient errors: :class:`trusts.AccessError` (a 403: this project
can't be reached, its messages are dead-lettered) or transient ones
(retried).
"""

import threading

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading

from bridge.zaqar import client as zaqar_client
from bridge.zaqar import options
from bridge.zaqar import trusts as zaqar_trusts

GROUP = options.GROUP

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
        # The client whose transport every other one uses; one Client-ID
        # for the whole process.
        self._shared = self._new_client(self.own_project, shared=None)
        self._client_id = self._shared.client_uuid

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

    @property
    def own_project(self):
        """What :meth:`for_project` takes for the bridge's own project."""
        if self._session is None:
            return self.group.noauth_project_id
        return OWN_PROJECT

    def for_project(self, project):
        """The client for ``project``; it authenticates on first use."""
        if project == self.own_project:
            return self._shared
        if self._session is None:
            # Nothing to keep: a noauth client is its project header.
            return self._new_client(project)
        with self._lock:
            client = self._clients.get(project)
            if client is None:
                client = self._new_client(project)
                self._clients[project] = client
            return client

    def _new_client(self, project, shared=True):
        shared = self._shared if shared else None
        client_id = getattr(self, '_client_id', None)
        if self._session is None:
            return zaqar_client.noauth_client(
                self.group.url, project, client_id=client_id,
                request_timeout=self.group.request_timeout, shared=shared)
        session = self._session
        if self._trusts is not None and project != OWN_PROJECT:
            session = self._trusts.session_for(project)
        conf = {'auth_opts': {'backend': 'keystone', 'options': {}}}
        if client_id:
            conf['client_uuid'] = client_id
        return zaqar_client.Client(self.group.url, version=2, conf=conf,
                                   session=session,
                                   request_timeout=self.group.request_timeout,
                                   shared=shared)

    def check(self):
        """Raise when Zaqar can't be reached (used at start-up)."""
        self.for_project(self.own_project).queues(limit=1)
