"""HTTP to Zaqar for the ``zaqar://`` driver: a config-free client.

:class:`Client` is bridge/zaqar_http.py's client (one connection reused,
its pool sized to the driver's concurrency) with TLS settings applied to
every request.
:func:`make_client` authenticates it per ``auth_strategy`` and returns a
:class:`Zaqar`, the few operations the rest of the driver makes.
"""

import logging
import time
from urllib import parse
import uuid

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1.identity import v3 as ks_v3
from keystoneauth1 import session as ks_session
import oslo_messaging
import requests
from zaqarclient.queues.v2 import core as zcore
from zaqarclient.transport import errors as zerrors

from bridge import backoff
from bridge import zaqar_http
from bridge.drivers.zaqar import options
from bridge.drivers.zaqar import signed_urls

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 8888
# Zaqar's max_messages_per_claim_or_pop and max_messages_per_page.
MAX_MESSAGES = 20
# Zaqar refuses a claim grace below 60 s.
CLAIM_GRACE = options.ZAQAR_MIN_TTL

PERMANENT_ERRORS = zaqar_http.PERMANENT_ERRORS
# Errors worth retrying: the server, Keystone or the network is not there
# right now (keystoneauth fails while zaqarclient asks for a token).
TRANSIENT_ERRORS = (zerrors.TransportError, requests.RequestException,
                    ks_exc.ClientException, ConnectionError, TimeoutError,
                    OSError)


class Client(zaqar_http.Client):
    """The shared reusing client (bridge/zaqar_http.py), TLS per request.

    ``verify`` (True, False or a CA bundle) applies to every request:
    zaqarclient itself only applies TLS settings with Keystone.
    ``pool_size`` connections are kept open per host.
    """

    def __init__(self, url, auth_opts, session=None, request_timeout=None,
                 verify=True, pool_size=10):
        super().__init__(url, version=2,
                         conf={'auth_opts': auth_opts,
                               'client_uuid': str(uuid.uuid4())},
                         session=session, request_timeout=request_timeout,
                         pool_size=pool_size)
        self._verify = verify

    def _request_and_transport(self):
        req, trans = super()._request_and_transport()
        req.verify = self._verify is not False
        req.cert = self._verify if isinstance(self._verify, str) else None
        return req, trans


def endpoint(url, scheme):
    """The Zaqar endpoint of a transport URL, e.g. ``http://h:8888``."""
    if not url.hosts or not url.hosts[0].hostname:
        raise oslo_messaging.InvalidTransportURL(
            str(url), 'a zaqar:// transport URL needs a host')
    if len(url.hosts) > 1:
        LOG.warning('zaqar:// uses the first host of its transport URL '
                    'only (%s)', url.hosts[0].hostname)
    host = url.hosts[0]
    hostname = host.hostname
    if ':' in hostname:
        hostname = '[%s]' % hostname
    out = '%s://%s:%d' % (scheme, hostname, host.port or DEFAULT_PORT)
    if url.virtual_host:
        out += '/' + url.virtual_host.strip('/')
    return out


def auth_strategy(opts, url):
    """``auth_strategy``, or what the URL implies when it is unset.

    A password in the URL means Keystone credentials; otherwise the user
    part, if any, names the project (noauth).
    """
    if opts.auth_strategy:
        return opts.auth_strategy
    host = url.hosts[0] if url.hosts else None
    return 'keystone' if host is not None and host.password else 'noauth'


def make_client(opts, url, pool_size=10):
    """The driver's :class:`Zaqar`, authenticated per ``auth_strategy``.

    With Keystone the session (and its token cache) is built here, once.
    With signed URLs there is one client per signed queue.
    """
    verify = False if opts.insecure else (opts.ssl_ca_file or True)
    strategy = auth_strategy(opts, url)
    host = url.hosts[0] if url.hosts else None
    user = host.username if host is not None else None
    password = host.password if host is not None else None
    session = None

    def build(auth_opts):
        return Client(endpoint(url, opts.url_scheme), auth_opts,
                      session=session, request_timeout=opts.request_timeout,
                      verify=verify, pool_size=pool_size)

    if strategy == 'keystone':
        username = user or opts.username
        password = password or opts.password
        if not (opts.auth_url and username and password
                and (opts.project_id or opts.project_name)):
            raise oslo_messaging.InvalidTransportURL(
                str(url), 'auth_strategy = keystone needs auth_url, a user '
                'and password, and project_id or project_name')
        auth = ks_v3.Password(
            auth_url=opts.auth_url, username=username, password=password,
            user_domain_name=opts.user_domain_name,
            project_id=opts.project_id, project_name=opts.project_name,
            project_domain_name=opts.project_domain_name)
        # The timeout also bounds the token requests (the session's own).
        session = ks_session.Session(auth=auth, verify=verify,
                                     timeout=opts.request_timeout)
        return Zaqar(build({'backend': 'keystone', 'options': {}}),
                     session=session)
    if password:
        LOG.warning('zaqar:// ignores the password of its transport URL '
                    'unless auth_strategy = keystone')
    # The user part of the URL names the project.
    project = user or opts.project_id
    if strategy == 'signed_url':
        try:
            urls = signed_urls.load(opts, project)
        except signed_urls.SignedUrlError as exc:
            raise oslo_messaging.InvalidTransportURL(str(url), str(exc))
        return Zaqar(None, {queue: build(signed_urls.auth_opts(entry))
                            for queue, entry in urls.items()}, project)
    if not project:
        raise oslo_messaging.InvalidTransportURL(
            str(url), 'auth_strategy = noauth needs a project: '
            'zaqar://<project>@host:port/ or project_id')
    return Zaqar(build({'backend': 'noauth',
                        'options': {'os_project_id': project}}), None,
                 project)


class Zaqar:
    """The few Zaqar operations the driver makes.

    One client for every queue, or (signed URLs) one client per queue and
    none for the others.  ``project`` is the one the driver names itself
    (None with Keystone, where the token carries it); ``session`` the
    Keystone one (its token also authenticates push, push_auth.py).
    """

    def __init__(self, client, per_queue=None, project=None, session=None):
        self._client = client
        self._per_queue = per_queue or {}
        self.project = project
        self.session = session

    def covers(self, queue):
        """False for a queue this driver has no credentials for."""
        return self._client is not None or queue in self._per_queue

    def client(self, queue):
        client = self._per_queue.get(queue, self._client)
        if client is None:
            raise zerrors.ForbiddenError(
                'no signed URL for queue %s (add one to signed_url_file)'
                % queue)
        return client

    def post(self, queue, bodies, ttl):
        """Post ``bodies``; the ids of the new messages."""
        posted = self.client(queue).queue(queue).post(
            [{'body': b, 'ttl': ttl} for b in bodies])
        return [href.rsplit('/', 1)[-1]
                for href in (posted or {}).get('resources') or ()]

    def free(self, queue):
        """How many messages of ``queue`` nobody has claimed, counting up
        to :data:`MAX_MESSAGES`.

        Listed rather than read from the queue's stats: Zaqar's Redis
        backend answers 503 to a stats request while a claim expires.
        """
        return len(self.list(queue, None)[0])

    def claim(self, queue, limit, ttl):
        """Claim up to ``limit``: ``(claim id, [Message...])``."""
        claim = self.client(queue).queue(queue).claim(
            ttl=ttl, grace=CLAIM_GRACE, limit=limit)
        return claim.id, list(claim)

    def pop(self, queue, limit):
        return list(self.client(queue).queue(queue).pop(limit))

    def _request(self, queue):
        return self.client(queue)._request_and_transport()

    def list(self, queue, marker, limit=MAX_MESSAGES):
        """One page of messages after ``marker``: ``(messages, marker)``.

        The returned marker is the one of the page's ``next`` link, or the
        given one when the page is empty.  Markers are opaque (a message
        id with Redis, a counter with MongoDB).
        """
        req, trans = self._request(queue)
        params = {'limit': limit, 'echo': True}
        if marker:
            params['marker'] = marker
        page = zcore.message_list(trans, req, queue, **params)
        for link in page.get('links') or ():
            if link.get('rel') == 'next':
                marker = _query_param(link.get('href', ''), 'marker',
                                      marker)
        return page.get('messages') or [], marker

    def delete(self, queue, message_id, claim_id=None):
        req, trans = self._request(queue)
        zcore.message_delete(trans, req, queue, message_id, claim_id)

    def release(self, queue, claim_id):
        req, trans = self._request(queue)
        zcore.claim_delete(trans, req, queue, claim_id)

    def delete_queue(self, queue):
        self.client(queue).queue(queue).delete()


def post(zaqar, queue, body, ttl, retry=None, deadline=None):
    """Post one body to ``zaqar`` (a :class:`Zaqar`), retrying what may
    pass later.

    ``retry`` as in the driver's ``send()`` (None or -1: forever).  A
    retried post may store the message twice: receivers drop the copy by
    wire id.
    """
    attempt = 0
    pauses = backoff.Backoff(0.25, 5.0)
    while True:
        try:
            zaqar.post(queue, [body], ttl)
            return
        except PERMANENT_ERRORS as exc:
            raise oslo_messaging.MessageDeliveryFailure(
                'Zaqar refused the message for queue %s: %s'
                % (queue, backoff.error_text(exc)))
        except TRANSIENT_ERRORS as exc:
            attempt += 1
            if retry is not None and 0 <= retry < attempt:
                raise oslo_messaging.MessageDeliveryFailure(
                    'Could not post to Zaqar queue %s after %d '
                    'attempt(s): %s' % (queue, attempt,
                                        backoff.error_text(exc)))
            pause = pauses.next()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise oslo_messaging.MessagingTimeout(
                        'Could not post to Zaqar queue %s in time: %s'
                        % (queue, backoff.error_text(exc)))
                pause = min(pause, left)
            LOG.warning('Posting to Zaqar queue %s failed (%s), '
                        'retrying in %.2fs', queue,
                        backoff.error_text(exc), pause)
            time.sleep(pause)


def _query_param(href, name, default=None):
    values = parse.parse_qs(parse.urlsplit(href).query).get(name)
    return values[0] if values else default
