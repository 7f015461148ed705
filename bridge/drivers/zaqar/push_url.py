"""Where the ``zaqar://`` driver finds Zaqar's websocket push: the
``websocket_url`` option (push.py is the socket itself).

With Keystone and ``auto`` the token's service catalog may name it too
(push_auth.py reads it at each connection); this is the URL otherwise.
"""

from bridge.drivers.zaqar import options
from bridge.drivers.zaqar import push

# Zaqar's websocket transport accepts pre-signed frames only for message
# actions (zaqar/api/handler.py), never subscription_create.
SIGNED_URL = ('push does not work with auth_strategy = signed_url (Zaqar '
              'signs no websocket subscription)')


def websocket_url(opts, url, auth_strategy):
    """``(websocket URL or None, guessed, why not)`` per the
    ``websocket_url`` option.

    ``auto``: the first host of the transport URL (``url``) on Zaqar's
    default websocket port, ``wss://`` with ``url_scheme = https``
    (``guessed``: nothing may answer there).  No push (None) when it is
    off, without websocket-client, or with signed URLs (``why`` says which,
    except for auto, which only uses push where it can).
    """
    configured = opts.websocket_url
    if not configured:
        return None, False, None
    auto = configured == options.AUTO
    if auth_strategy == 'signed_url':
        return None, auto, None if auto else SIGNED_URL
    if push.websocket is None:
        return None, auto, 'the websocket-client package is not installed'
    if not auto:
        return configured, False, None
    host = url.hosts[0].hostname if url.hosts else None
    if not host:
        return None, True, None
    if ':' in host:
        host = '[%s]' % host
    scheme = 'wss' if opts.url_scheme == 'https' else 'ws'
    return ('%s://%s:%d' % (scheme, host, options.DEFAULT_WEBSOCKET_PORT),
            True, None)
