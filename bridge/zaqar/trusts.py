"""Trust-scoped Keystone sessions: one per tenant project, built once.

With ``[zaqar] tenant_access = trusts`` the bridge reaches each tenant's
queues in the tenant's own project.  A user of that project delegates a
role (``member``) to the bridge's Keystone user with a trust; the bridge
then authenticates as itself *with the trust* and gets a token scoped to
the tenant's project, and to nothing else.

The trust of a project is the one named in ``[zaqar] trusts``, else the
newest unexpired trust that names the bridge as trustee for that project
(listed with the bridge's own token).  Each project gets one keystoneauth
session, cached: keystoneauth reuses its token and fetches a new one
shortly before it expires, so no message costs an authentication.

When Keystone refuses a trust (deleted, expired, or its trustor lost the
role) while it still accepts the bridge's own password, the project is
out of reach: :class:`AccessError` is raised for it (a permanent error:
its messages are dead-lettered) and logged once, and Keystone is asked
again after ``trust_recheck_interval`` seconds, so a new trust is picked up
without a restart.  Failures of the bridge's own credentials or of
Keystone itself are transient errors: the callers retry.
"""

import datetime
import threading
import time

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import plugin as ks_plugin
from oslo_log import log
from zaqarclient.transport import errors as zerrors

LOG = log.getLogger(__name__)

# Options of the password plugins that scope a token: a trust replaces them.
SCOPE_OPTIONS = ('project_id', 'project_name', 'project_domain_id',
                 'project_domain_name', 'domain_id', 'domain_name',
                 'system_scope')
# Keystone is down or broken: retry later.
KEYSTONE_DOWN = (ks_exc.ConnectionError, ks_exc.HttpServerError,
                 ks_exc.DiscoveryFailure)


class _Error:
    """A zaqarclient error with a plain message (theirs says "Zaqar")."""

    def __init__(self, message):
        Exception.__init__(self, message)


class AccessError(_Error, zerrors.ForbiddenError):
    """The bridge may not act for this project: no usable trust."""


class CredentialsError(_Error, zerrors.UnauthorizedError):
    """Keystone refused the bridge's own credentials (transient)."""


class KeystoneUnavailable(_Error, zerrors.ServiceUnavailableError):
    """Keystone can't be reached or failed (transient)."""


def keystone_error(exc, what='the bridge\'s credentials ([zaqar] auth '
                             'options)'):
    """The zaqarclient error that stands for a keystoneauth failure."""
    if isinstance(exc, KEYSTONE_DOWN):
        return KeystoneUnavailable('Keystone unavailable: %s' % exc)
    return CredentialsError('Keystone refused %s: %s' % (what, exc))


class ProjectSession:
    """What zaqarclient needs of a session (``get_token``), for a project."""

    def __init__(self, trusts, project):
        self._trusts = trusts
        self._project = project

    def get_token(self):
        return self._trusts.token(self._project)

    def invalidate(self):
        """Zaqar refused the token: authenticate again next time."""
        self._trusts.forget(self._project)


class Trusts:
    """The trust-scoped sessions of every project this process serves.

    ``own`` is the bridge's own (project-scoped) keystoneauth session,
    used to list trusts and to tell a refused trust from refused
    credentials.
    """

    def __init__(self, conf, group, own, clock=time.monotonic):
        self.conf = conf
        self.group = group
        self.own = own
        self.static = dict(conf[group].trusts or {})
        self.recheck = conf[group].trust_recheck_interval
        self._clock = clock
        self._sessions = {}   # project -> (trust id, keystoneauth session)
        self._refused = {}    # project -> (retry at, AccessError)
        self._lock = threading.Lock()

    def session_for(self, project):
        return ProjectSession(self, project)

    def token(self, project):
        trust_id, session = self._session(project)
        try:
            token = session.get_token()
        except ks_exc.ClientException as exc:
            error = exc
        else:
            if self._refused.pop(project, None) is not None:
                LOG.info('Project %s: trust %s accepted, its queues are '
                         'served again', project, trust_id)
            return token
        # Out of the except block: the log line says it all, no traceback.
        raise self._failed(project, trust_id, error)

    def forget(self, project):
        with self._lock:
            self._sessions.pop(project, None)

    def _session(self, project):
        with self._lock:
            refused = self._refused.get(project)
            if refused is not None and self._clock() < refused[0]:
                raise refused[1]
            if project not in self._sessions:
                trust_id = self._find(project)
                self._sessions[project] = (trust_id,
                                           self._new_session(trust_id))
            return self._sessions[project]

    def projects(self):
        """Every project of ``[zaqar] trusts`` or of a usable trust."""
        return set(self.static) | {t['project_id'] for t in self._usable()
                                   if t.get('project_id')}

    def _usable(self):
        """The unexpired trusts naming the bridge's user as trustee."""
        try:
            resp = self.own.get(
                '/OS-TRUST/trusts',
                params={'trustee_user_id': self.own.get_user_id()},
                endpoint_filter={'interface': ks_plugin.AUTH_INTERFACE})
            found = resp.json()['trusts']
        except ks_exc.ClientException as exc:
            raise keystone_error(exc)
        now = datetime.datetime.now(datetime.timezone.utc)
        return [t for t in found if not _expired(t.get('expires_at'), now)]

    def _find(self, project):
        if project in self.static:
            return self.static[project]
        usable = [t for t in self._usable()
                  if t.get('project_id') == project]
        if not usable:
            raise self._refuse(project, 'no trust names the bridge\'s user '
                               'as trustee for this project')
        # The newest expiry (none = never) first.
        usable.sort(key=lambda t: t.get('expires_at') or '9999',
                    reverse=True)
        return usable[0]['id']

    def _new_session(self, trust_id):
        group = self.conf[self.group]
        loader = ks_loading.get_plugin_loader(group.auth_type)
        names = {opt.dest for opt in loader.get_options()}
        overrides = {name: None for name in SCOPE_OPTIONS if name in names}
        auth = ks_loading.load_auth_from_conf_options(
            self.conf, self.group, trust_id=trust_id, **overrides)
        return ks_loading.load_session_from_conf_options(
            self.conf, self.group, auth=auth)

    def _failed(self, project, trust_id, exc):
        """Keystone said no to the trust: whose fault is it?"""
        self.forget(project)
        if isinstance(exc, KEYSTONE_DOWN) or not isinstance(
                exc, ks_exc.HttpError):
            return keystone_error(exc)
        try:
            # Same answer (401) for a deleted trust and a wrong password:
            # does Keystone still take the bridge's own credentials?
            self.own.invalidate()
            self.own.get_token()
        except ks_exc.ClientException as own_exc:
            return keystone_error(own_exc)
        return self._refuse(project, 'Keystone refused trust %s (%s)'
                            % (trust_id, exc))

    def _refuse(self, project, why):
        error = AccessError('no usable trust for project %s: %s' % (project,
                                                                   why))
        first = project not in self._refused
        self._refused[project] = (self._clock() + self.recheck, error)
        if first:
            LOG.error('Project %s: %s. The bridge cannot reach its queues: '
                      'messages for it are dead-lettered and its queues '
                      'are not drained until a user of the project creates '
                      'a trust for the bridge (checked again every %ds)',
                      project, why, self.recheck)
        return error


def _expired(expires_at, now):
    if not expires_at:
        return False
    try:
        when = datetime.datetime.fromisoformat(expires_at.replace('Z',
                                                                  '+00:00'))
    except (TypeError, ValueError):
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when <= now
