"""Who a push socket speaks for: its project and, with Keystone, the
token it authenticates with.

A websocket zaqar-server with ``auth_strategy = keystone`` answers 403 to
every frame of a socket until it sends ``authenticate`` with headers
``X-Auth-Token``, ``X-Project-ID`` and ``Client-ID``
(zaqar/transport/websocket/protocol.py); keystonemiddleware validates the
token, and from then on each frame must name the token's project in
``X-Project-ID``.  The server closes the socket (code 4003) when the token
expires.  Without auth it must not be sent (the server drops the socket).

:class:`Login` is what one socket uses: :class:`Project` (noauth) names
the project only; :class:`Keystone` takes the token, its project and its
expiry from the driver's keystoneauth session (the one its HTTP requests
use) at each (re)connection, so a reopened socket has a current token.
"""

import dataclasses
import datetime
import logging

from keystoneauth1 import exceptions as ks_exc

LOG = logging.getLogger(__name__)

# The Keystone catalog's service type of Zaqar's websocket transport.
SERVICE_TYPE = 'messaging-websocket'
# Reopen a socket this long before its token expires (at most half the
# token's remaining life).  keystoneauth hands out a new token once the
# old one has less than 120 s left, so the reopened socket has a new one.
EXPIRY_MARGIN = 60.0


@dataclasses.dataclass(frozen=True)
class Login:
    project: str
    token: str = None       # None: send no ``authenticate`` frame
    lifetime: float = None  # seconds the token is valid; None: no limit
    url: str = None         # the websocket URL the catalog names, if any

    def renew_in(self):
        """Seconds until the socket should be reopened for a new token,
        or None."""
        if self.lifetime is None:
            return None
        return self.lifetime - min(EXPIRY_MARGIN, self.lifetime / 2)


class Project:
    """noauth: the project, sent in ``X-Project-ID``; no token."""

    def __init__(self, project):
        self.project = project

    def login(self):
        return Login(self.project)

    def refused(self):
        pass


class Keystone:
    """The token (and project) of a keystoneauth session.

    ``catalog``: also look up the websocket URL in the token's service
    catalog (service type ``messaging-websocket``, ``interface``).
    """

    def __init__(self, session, catalog=False, interface='public'):
        self.session = session
        self.catalog = catalog
        self.interface = interface

    def login(self):
        """A current token: keystoneauth reuses its cached one until it
        nears expiry.  Raises keystoneauth's errors (Keystone down...)."""
        access = self.session.auth.get_access(self.session)
        lifetime = None
        if access.expires is not None:
            now = datetime.datetime.now(datetime.timezone.utc)
            lifetime = (access.expires - now).total_seconds()
        return Login(access.project_id, access.auth_token, lifetime,
                     self._catalog_url(access))

    def _catalog_url(self, access):
        if not self.catalog or access.service_catalog is None:
            return None
        try:
            return access.service_catalog.url_for(
                service_type=SERVICE_TYPE, interface=self.interface)
        except ks_exc.EndpointNotFound:
            return None

    def refused(self):
        """The server refused the token (revoked?): take a new one next
        time."""
        LOG.debug('Zaqar refused the websocket token; getting a new one')
        self.session.invalidate()
