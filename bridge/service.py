"""Configuration and logging set-up shared by the daemon and the CLI."""

import sys

from oslo_config import cfg
from oslo_log import log

from bridge import opts
from bridge import routing

LOG = log.getLogger(__name__)

DEFAULT_OPTS = [
    cfg.StrOpt('transport_url', secret=True,
               default='rabbit://guest:guest@127.0.0.1:5672/',
               help='The control-plane RabbitMQ, in oslo.messaging\'s URL '
                    'syntax: rabbit://user:pass@host1:5672,user:pass@'
                    'host2:5672/vhost. Several hosts fail over in turn.'),
    cfg.ListOpt('routes', default=[],
                help='Names of the routes to run; each has a [route:NAME] '
                     'section.'),
]


class ConfigError(Exception):
    """Configuration that stops the bridge; the text is one clear line."""


def register_opts(conf):
    for group, options in opts.list_opts():
        if group.startswith(routing.GROUP_PREFIX):
            continue
        if group == 'zaqar':
            from bridge.zaqar import client
            client.register_opts(conf)
        else:
            conf.register_opts(list(options),
                               group=None if group == 'DEFAULT' else group)


def prepare_service(argv=None, config_files=None, conf=None):
    """Parse the command line and config files, set up oslo.log.

    Raises ConfigError with a one-line message for anything wrong.
    """
    conf = conf or cfg.ConfigOpts()
    log.register_options(conf)
    register_opts(conf)
    if argv is None:
        argv = sys.argv[1:]
    try:
        conf(argv, project='amqp-zaqar-bridge',
             default_config_files=config_files)
    except cfg.ConfigFilesNotFoundError as exc:
        raise ConfigError('config file not found: %s'
                          % ', '.join(exc.config_files))
    except cfg.ConfigFileParseError as exc:
        raise ConfigError('config file %s cannot be parsed: %s'
                          % (exc.config_file, exc.msg))
    except cfg.Error as exc:
        raise ConfigError(str(exc).split('\n')[0])
    log.set_defaults(default_log_levels=log.get_default_log_levels() + [
        'cotyledon=INFO', 'stevedore=WARN', 'kombu=INFO', 'amqp=INFO'])
    log.setup(conf, 'amqp-zaqar-bridge')
    return conf


def load_routes(conf):
    """Validate the whole configuration; return the routes.

    Raises ConfigError naming the route and option that are wrong.
    """
    from bridge.amqp import connection
    try:
        connection.kombu_url(conf.transport_url)
    except connection.URLError as exc:
        raise ConfigError('[DEFAULT] transport_url: %s' % exc)
    except (cfg.ConfigFileValueError, ValueError) as exc:
        raise ConfigError('[DEFAULT] transport_url: %s' % exc)
    for group, option in (('zaqar', 'url'), ('zaqar', 'auth_strategy')):
        try:
            conf[group][option]
        except (cfg.ConfigFileValueError, ValueError) as exc:
            raise ConfigError('[%s] %s: bad value: %s'
                              % (group, option, str(exc).split('\n')[0]))
    try:
        routes, stray = routing.load(conf)
    except routing.RouteError as exc:
        raise ConfigError(str(exc))
    except (cfg.ConfigFileValueError, ValueError) as exc:
        raise ConfigError('[DEFAULT] routes: %s' % exc)
    if not routes:
        raise ConfigError('[DEFAULT] routes lists no route: nothing to '
                          'bridge')
    for section in stray:
        LOG.warning('Section [%s] is not listed in [DEFAULT] routes and is '
                    'ignored', section)
    if any(r.envelope == 'oslo' for r in routes) and not conf.rpc.reply_secret:
        raise ConfigError('[rpc] reply_secret is required when a route uses '
                          'envelope = oslo (it signs reply addresses)')
    for route in routes:
        if route.doorbell_port and not conf.rpc.reply_secret:
            raise ConfigError(str(routing.RouteError(
                route.name, 'doorbell_port', '[rpc] reply_secret is '
                'required with a doorbell (it signs the subscriptions)')))
    from bridge.zaqar import client
    problem = client.check_conf(conf, routes)
    if problem:
        raise ConfigError(problem)
    return routes
