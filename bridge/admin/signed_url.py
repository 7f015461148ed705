"""``signed-url``: pre-signed Zaqar URLs for the queues of a guest.

The bridge asks Zaqar to sign (``POST /v2/queues/Q/share``) in the
tenant's project, as it reaches that project itself.  What comes back lets
a guest use that one queue, with those methods, until it expires, and no
other queue: Zaqar checks the signature against the paths, methods,
project and expiry sent with each request (``[signed_url] secret_key`` must
be set on zaqar-server).
"""

from bridge.admin import cli
from bridge.admin import Failure
from bridge.admin import output
from bridge.admin import UsageError
from bridge import backoff
from bridge import naming
from bridge.zaqar import client as zaqar_client

METHODS = ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE')
PATHS = ('messages', 'claims', 'subscriptions')
# field -> option of the guest driver ([oslo_messaging_zaqar], zaqar://)
GUEST_OPTIONS = {'signature': 'signed_url_signature',
                 'expires': 'signed_url_expires',
                 'paths': 'signed_url_paths',
                 'methods': 'signed_url_methods',
                 'project': 'project_id',
                 'url': 'transport_url zaqar://<host>:<port>/'}

HELP = 'Issue pre-signed Zaqar URLs for queues of a guest.'
DESCRIPTION = '''\
Issue a pre-signed Zaqar URL that lets a guest use one queue of its tenant,
with the given methods, until it expires, and nothing else; one per --queue.
The bridge asks Zaqar to sign it in the tenant's project (zaqar-server
needs [signed_url] secret_key). Hand the printed fields to the guest: its
oslo.messaging driver (zaqar://, [oslo_messaging_zaqar] auth_strategy =
signed_url) takes the JSON output (--format json) as its signed_url_file,
or the fields of one URL as signed_url_signature, signed_url_expires,
signed_url_paths, signed_url_methods and project_id, and the Zaqar URL as
its transport URL;
python-zaqarclient takes the same values as the options of its
"signed-url" auth backend (signature, expires, paths, methods,
os_project_id).'''


def _choices(text, allowed, option, upper=False):
    values = [v.strip() for v in text.split(',') if v.strip()]
    if upper:
        values = [v.upper() for v in values]
    wrong = [v for v in values if v not in allowed]
    if wrong or not values:
        raise UsageError('%s %r: use a comma-separated list of %s'
                         % (option, text, ', '.join(allowed)))
    return values


def issue(conf, tenant, queue, methods, paths, expires_in):
    """Zaqar's answer plus where to reach it: the fields a guest needs."""
    clients = zaqar_client.Clients(conf)
    project = clients.project_of(tenant)
    client = clients.for_project(project)
    try:
        signed = client.queue(queue).signed_url(
            paths=paths, ttl_seconds=expires_in, methods=methods)
    except zaqar_client.PERMANENT_ERRORS as exc:
        raise Failure('Zaqar at %s refused to sign a URL for queue %s of '
                      'tenant %s: %s' % (conf.zaqar.url, queue, tenant,
                                         backoff.error_text(exc)))
    except zaqar_client.TRANSIENT_ERRORS as exc:
        raise Failure('Zaqar at %s is unreachable: %s'
                      % (conf.zaqar.url, backoff.error_text(exc)))
    return {'url': conf.zaqar.url, 'queue': queue, 'tenant': tenant,
            'project': signed.get('project', project),
            'signature': signed['signature'], 'expires': signed['expires'],
            'paths': signed['paths'], 'methods': signed['methods']}


def _mapped_hint(name):
    """Where a topic's messages go, for an operator who gave the topic."""
    try:
        return '; the queue of the topic %r is %s' % (name,
                                                      naming.queue_name(name))
    except naming.QueueNameError:
        return ''


def signed_url(conf, routes):
    args = conf.command
    for queue in args.queue:
        if not naming.is_valid(queue):
            raise UsageError('--queue %r is not a Zaqar queue name '
                             '([A-Za-z0-9_-], at most 64 characters)%s'
                             % (queue, _mapped_hint(queue)))
    if args.expires_in < 1:
        raise UsageError('--expires-in %d: must be at least 1 second'
                         % args.expires_in)
    methods = _choices(args.methods, METHODS, '--methods', upper=True)
    paths = _choices(args.paths, PATHS, '--paths')
    issued = [issue(conf, args.tenant, queue, methods, paths,
                    args.expires_in) for queue in args.queue]
    if len(issued) == 1:
        fields = issued[0]
        rows = [{'field': key,
                 'value': ','.join(value) if isinstance(value, list)
                 else value,
                 'guest option': GUEST_OPTIONS.get(key, '')}
                for key, value in fields.items()]
        output.show(conf, rows, json_value=fields)
    else:
        rows = [{'queue': f['queue'], 'methods': ','.join(f['methods']),
                 'expires': f['expires'], 'signature': f['signature']}
                for f in issued]
        output.show(conf, rows, json_value=issued,
                    title='Save --format json as the guest\'s '
                          'signed_url_file.')
    return 0


def add_parser(subparsers):
    parser = cli.add_parser(subparsers, 'signed-url', help=HELP,
                            description=DESCRIPTION)
    parser.set_defaults(func=signed_url)
    parser.add_argument('--tenant', required=True,
                        help='The guest\'s tenant (project).')
    parser.add_argument('--queue', required=True, action='append',
                        help='A Zaqar queue the guest may use; repeat it '
                             'for several queues (one signed URL each, '
                             'printed as a list: the guest driver\'s '
                             'signed_url_file).')
    parser.add_argument('--methods', default='GET,POST,PATCH,DELETE',
                        help='HTTP methods allowed, comma-separated, of %s '
                             '(default: GET,POST,PATCH,DELETE).'
                             % ','.join(METHODS))
    parser.add_argument('--paths', default='messages,claims',
                        help='Resources of the queue allowed, '
                             'comma-separated, of %s (default: '
                             'messages,claims).' % ','.join(PATHS))
    parser.add_argument('--expires-in', type=int, default=86400,
                        metavar='SECONDS',
                        help='Validity in seconds (default: 86400).')
    cli.add_format_option(parser)
    return parser
