"""Options of the ``zaqar://`` oslo.messaging driver.

They live in ``[oslo_messaging_zaqar]`` of the guest's configuration.  Any
of them can also be given in the query of the transport URL, which wins
over the file (as with the kafka driver)::

    zaqar://zaqar.example.org:8888/?project_id=5f0c...&poll_interval_max=2

None is needed in the URL, though (some tools refuse a query they don't
know): the user part of the URL names the project without
authentication, ``zaqar://<project>@zaqar.example.org:8888/``, or carries
Keystone credentials, ``zaqar://<user>:<password>@zaqar.example.org:8888/``
(the Keystone project and ``auth_url`` then come from this group).
"""

from oslo_config import cfg
from oslo_messaging._drivers import common

GROUP = 'oslo_messaging_zaqar'

# Zaqar refuses claim ttl/grace and message ttl below 60 s.
ZAQAR_MIN_TTL = 60
# oslo.messaging's executor_thread_pool_size default, and the connections
# the listeners, the reply waiter and callers' threads add to it.
EXECUTOR_THREADS = 64
EXTRA_CONNECTIONS = 16

# websocket_url: find the websocket zaqar-server (push_url.py).
AUTO = 'auto'
# zaqar-server's [drivers:transport:websocket] port default.
DEFAULT_WEBSOCKET_PORT = 9000

OPTS = [
    cfg.StrOpt('url_scheme', default='http', choices=['http', 'https'],
               help='Scheme of the Zaqar endpoint; host and port come from '
                    'the transport URL, an optional path from its virtual '
                    'host.'),
    cfg.StrOpt('auth_strategy',
               choices=[('noauth', 'zaqar-server without authentication: '
                         'the project is sent in X-Project-ID'),
                        ('keystone', 'a Keystone v3 password session, '
                         'built once and reused'),
                        ('signed_url', 'a pre-signed Zaqar URL (the '
                         'signed_url_* options)')],
               help='How the driver authenticates to Zaqar. Unset: '
                    'keystone when the transport URL carries a password '
                    '(zaqar://<user>:<password>@host), else noauth.'),
    cfg.StrOpt('project_id',
               help='The project whose queues the driver uses. Required '
                    'with auth_strategy = noauth (sent as X-Project-ID) '
                    'unless the user part of the transport URL names it '
                    '(zaqar://<project>@host, which wins over this); with '
                    'signed_url, the project of the URLs that do not name '
                    'theirs; with keystone it scopes the token, instead '
                    'of project_name.'),
    cfg.URIOpt('auth_url', schemes=['http', 'https'],
               help='keystone: the Identity v3 endpoint, e.g. '
                    'https://keystone.example.org/v3.'),
    cfg.StrOpt('username',
               help='keystone: user name. The user of the transport URL '
                    '(zaqar://user:pass@host) wins over this.'),
    cfg.StrOpt('password', secret=True,
               help='keystone: password. The password of the transport URL '
                    'wins over this.'),
    cfg.StrOpt('project_name',
               help='keystone: name of the project to scope the token to '
                    '(when project_id is not set).'),
    cfg.StrOpt('user_domain_name', default='Default',
               help='keystone: domain of the user.'),
    cfg.StrOpt('project_domain_name', default='Default',
               help='keystone: domain of project_name.'),
    cfg.StrOpt('signed_url_signature', secret=True,
               help='signed_url: the URL-Signature of the pre-signed URL.'),
    cfg.StrOpt('signed_url_expires',
               help='signed_url: its URL-Expires (ISO 8601 time, as Zaqar '
                    'returned it).'),
    cfg.ListOpt('signed_url_paths', default=[],
                help='signed_url: its URL-Paths (the resources of one '
                     'queue, as Zaqar signs one queue per URL).'),
    cfg.ListOpt('signed_url_methods', default=[],
                help='signed_url: its URL-Methods (GET, POST, PATCH, '
                     'DELETE...).'),
    cfg.StrOpt('signed_url_file',
               help='signed_url: a JSON file with one pre-signed URL per '
                    'queue the driver uses (an object or a list of objects '
                    'with signature, expires, paths, methods and project, '
                    'as printed by amqp-zaqar-bridge-manage signed-url '
                    '--format json). A listener skips, with a warning, the '
                    'queues it has no URL for; sending to one fails.'),
    cfg.StrOpt('ssl_ca_file',
               help='CA bundle to verify the Zaqar (and Keystone) HTTPS '
                    'certificates with, instead of the system one.'),
    cfg.BoolOpt('insecure', default=False,
                help='Do not verify HTTPS certificates (tests only).'),
    cfg.StrOpt('queue_prefix', default='', regex=r'^[A-Za-z0-9_-]{0,40}$',
               help='Put before the name of every queue the driver derives '
                    'from a topic (and of its reply queue). With a bridge '
                    'in [zaqar] tenant_access = service_project, where the '
                    'queues of every tenant share one project, set it to '
                    'what the bridge\'s templates put before the topic, '
                    'e.g. <project id>- for {tenant}-{routing_key}.'),
    cfg.StrOpt('reply_queue_prefix', default='reply_',
               regex=r'^[A-Za-z0-9_-]{1,32}$',
               help='Prefix of the reply queue this driver creates for its '
                    'own calls: <queue_prefix><reply_queue_prefix><uuid '
                    'hex> (the hex cut to fit 64 characters), one per '
                    'driver. The bridge answers controller replies into '
                    'it.'),
    cfg.StrOpt('reply_queue', default='', regex=r'^([A-Za-z0-9_-]{1,64})?$',
               help='The exact name of the reply queue for this driver\'s '
                    'own calls, instead of a new one per driver (needed '
                    'with signed URLs, which exist only for queues named '
                    'in advance). Only one driver may read it: give each '
                    'guest its own. It is never deleted by the driver.'),
    cfg.IntOpt('claim_ttl', default=300, min=ZAQAR_MIN_TTL, max=43200,
               help='Seconds a claimed RPC request or notification stays '
                    'invisible to other listeners before it is handed out '
                    'again if this one neither acknowledged nor requeued '
                    'it.'),
    cfg.FloatOpt('poll_interval_min', default=0.05, min=0.001,
                 help='Seconds between polls of a queue for '
                      'poll_interval_max seconds after it returned a '
                      'message (without push). Then each empty poll '
                      'doubles the interval up to poll_interval_max. This '
                      'sets the latency of a busy server. The reply queue '
                      'of a call waiting without push is looked at sooner: '
                      '5 ms after the call is sent, then at gaps growing by '
                      'a quarter up to this.'),
    cfg.FloatOpt('poll_interval_max', default=0.25, min=0.01,
                 help='Longest interval between polls of queues that stay '
                      'empty while push (websocket_url) does not work. This '
                      'bounds the latency of the first message after a '
                      'quiet period and the load an idle listener puts on '
                      'Zaqar without push (one request per queue per '
                      'interval, about 4 a second per queue by default, '
                      'and a read of the roll call of a shared queue every '
                      '5 s). The default keeps what oslo.messaging\'s own '
                      'tests expect of every driver (a notification within '
                      '0.5 s); raise it to spare Zaqar where latency '
                      'matters less.'),
    cfg.IntOpt('message_ttl', default=3600, min=ZAQAR_MIN_TTL,
               max=1209600,
               help='Seconds a cast, notification or reply lives in Zaqar '
                    'if nobody reads it. A call lives its timeout instead '
                    '(at least 60 s, at most this).'),
    cfg.IntOpt('fanout_ttl', default=300, min=ZAQAR_MIN_TTL, max=1209600,
               help='Seconds a fanout cast stays in its queue. Fanout '
                    'messages are never deleted (every listener reads '
                    'them); they expire. Keep it well above '
                    'poll_interval_max.'),
    cfg.StrOpt('websocket_url', default=AUTO,
               help='Where Zaqar pushes new messages: a websocket '
                    'zaqar-server sharing the storage of the HTTP one '
                    '(zaqar-server with [drivers] transport = websocket), '
                    'e.g. ws://zaqar.example.org:9000. "%s" (the default): '
                    'with auth_strategy = keystone the public '
                    '"messaging-websocket" endpoint of the token\'s '
                    'service catalog, if there is one; else the host of '
                    'the transport URL on Zaqar\'s default websocket port, '
                    '%d (wss:// when url_scheme = https); when nothing '
                    'answers there the driver polls as without push and '
                    'tries again now and then (at most every 30 s). '
                    'Empty: off, poll only. Each listener (and the reply '
                    'waiter) subscribes to its queues there and reads them '
                    'when Zaqar pushes a new message: a doorbell, messages '
                    'are still taken over HTTP. While push works a '
                    'listener polls only every push_poll_interval seconds '
                    '(a safety net: a lost push costs latency, never a '
                    'message); when the socket breaks it polls as without '
                    'push until it is back. The HTTP zaqar-server needs '
                    '[storage] message_pipeline = '
                    'zaqar.notification.notifier (else nothing is pushed '
                    'and messages wait for the safety poll). With '
                    'keystone the socket authenticates with the token the '
                    'driver\'s HTTP requests use, and is reopened with a '
                    'new one before it expires. Not with signed_url '
                    '(Zaqar signs no websocket subscription): the driver '
                    'polls.'
                    % (AUTO, DEFAULT_WEBSOCKET_PORT)),
    cfg.FloatOpt('push_poll_interval', default=120.0, min=1.0,
                 help='Seconds between the safety-net polls of a '
                      'listener\'s queues while Zaqar push works (the '
                      'latency of a message whose push was lost). An idle '
                      'RPC server then costs about 0.05 Zaqar requests a '
                      'second: its queues read once per interval, a '
                      'roll-call entry posted every minute.'),
    cfg.IntOpt('websocket_subscription_ttl', default=3600, min=60,
               help='Seconds a websocket subscription lives; the driver '
                    'renews it (reconnecting) before it expires.'),
    cfg.IntOpt('http_pool_size', default=0, min=0,
               help='HTTP connections to Zaqar kept open for reuse. 0: '
                    'executor_thread_pool_size + %d, one per thread that '
                    'may send at the same time (RPC server threads reply, '
                    'listeners and the reply waiter poll). Too few and '
                    'connections are closed after each request ("Connection '
                    'pool is full, discarding connection").'
                    % EXTRA_CONNECTIONS),
    cfg.FloatOpt('request_timeout', default=30.0, min=0.1,
                 help='Seconds before a Zaqar HTTP request is abandoned '
                      '(and, when sending, retried as the caller\'s retry '
                      'allows); with auth_strategy = keystone, also a '
                      'request for a Keystone token.'),
]


def register_opts(conf, url):
    """Register the options on ``conf``; return a view the URL overrides."""
    group = cfg.OptGroup(name=GROUP, title='Zaqar driver options')
    conf.register_group(group)
    conf.register_opts(OPTS, group=group)
    return common.ConfigOptsProxy(conf, url, GROUP)


def list_opts():
    return [(GROUP, OPTS)]
