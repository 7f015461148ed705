"""Configuration and logging set-up shared by the daemon and the CLI."""

import contextlib
import io
import sys

from cotyledon import oslo_config_glue
from oslo_config import cfg
from oslo_log import log

from bridge.amqp import connection
from bridge import confcheck
from bridge import opts
from bridge.routes import common as route_common
from bridge.routes import load as route_load
from bridge.routes import route as route_model
from bridge.zaqar import options as zaqar_options

LOG = log.getLogger(__name__)


class ConfigError(Exception):
    """Configuration that stops the bridge; the text is one clear line."""


def register_opts(conf):
    oslo_config_glue.register_opts(conf)    # read in the same file
    for group, options in opts.list_opts():
        if group.startswith(route_common.GROUP_PREFIX):
            continue
        if group == zaqar_options.GROUP:
            zaqar_options.register_opts(conf)
        else:
            conf.register_opts(list(options),
                               group=None if group == 'DEFAULT' else group)


def prepare_service(argv=None, config_files=None, conf=None,
                    description=None):
    """Parse the command line and config files, set up oslo.log.

    ``description`` is what ``--help`` says the program does.  Raises
    ConfigError with a one-line message for anything wrong.
    """
    conf = conf or cfg.ConfigOpts()
    log.register_options(conf)
    register_opts(conf)
    if argv is None:
        argv = sys.argv[1:]
    try:
        _parse(conf, argv, project='amqp-zaqar-bridge',
               default_config_files=config_files, description=description)
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


def _parse(conf, argv, **kwargs):
    """``conf(argv, **kwargs)``, where a command line option set to a bad
    value in a file (oslo.config writes its own line and exits) raises
    ConfigError in the bridge's words instead."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            conf(argv, **kwargs)
    except SystemExit:
        problem = confcheck.bad_cli_value(said.getvalue())
        if problem:
            said = io.StringIO()        # said once, below
            raise ConfigError(problem) from None
        raise
    finally:
        sys.stderr.write(said.getvalue())


def load_routes(conf):
    """Validate the whole configuration; return the routes.

    Raises ConfigError naming the route and option that are wrong.
    """
    _check_files(conf)
    try:
        connection.kombu_url(conf.transport_url)
    except connection.URLError as exc:
        raise ConfigError('[DEFAULT] transport_url: %s' % exc)
    try:
        routes, stray = route_load.load(conf)
    except route_common.RouteError as exc:
        raise ConfigError(str(exc))
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
            raise ConfigError(str(route_common.RouteError(
                route.name, 'doorbell_port', '[rpc] reply_secret is '
                'required with a doorbell (it signs the subscriptions)')))
    problem = route_load.check_zaqar_access(conf, routes)
    if problem:
        raise ConfigError(problem)
    return routes


def _check_files(conf):
    """Refuse unknown options and bad values in the bridge's sections.

    Sections of other programs sharing the file are left alone; in the
    bridge's own, the options of the libraries reading them (oslo.log,
    cotyledon, keystoneauth) are known too.
    """
    own = {group for group, _ in opts.list_opts()
           if not group.startswith(route_common.GROUP_PREFIX)}
    known = {group: options
             for group, options in confcheck.known_options().items()
             if group in own}
    sections = dict(known)
    sections.update((route_common.GROUP_PREFIX + name, route_model.OPTS)
                    for name in conf.routes)
    problem = confcheck.unknown_options(conf, sections)
    if problem:
        raise ConfigError(problem)
    for group, options in known.items():
        for opt in options:
            try:
                confcheck.value(conf, group, opt)
            except cfg.NoSuchOptError:
                continue    # keystoneauth's, registered when loaded
            except confcheck.BadValue as exc:
                raise ConfigError('[%s] %s: %s' % (group, opt.dest, exc))
