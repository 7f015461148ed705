"""amqp-zaqar-bridge-manage: the operator's command line."""

import sys

from oslo_config import cfg
from oslo_log import log

from bridge import admin
from bridge.admin import cli
from bridge.admin import deadletter_commands
from bridge.admin import idle_queues
from bridge.admin import output
from bridge.admin import signed_url
from bridge.admin import status
from bridge.amqp import connection as amqp_connection
from bridge import backoff
from bridge.daemon import checks
from bridge.daemon import config
from bridge.routes import common as route_common

LOG = log.getLogger(__name__)


def _route_rows(routes):
    rows = []
    for r in routes:
        if r.direction == route_common.TO_ZAQAR:
            source = '%s exchange %s [%s] queue %s' % (
                r.exchange_type, r.exchange, ','.join(r.binding_keys),
                r.amqp_queue)
            target = 'zaqar %s (tenant %s)' % (r.zaqar_queue, r.tenant)
        else:
            source = 'zaqar %s of %s' % (r.zaqar_queue,
                                         ','.join(r.tenants))
            target = '%s exchange %r key %s' % (r.exchange_type, r.exchange,
                                                r.routing_key)
        rows.append({'route': r.name, 'direction': r.direction,
                     'workers': r.workers, 'envelope': r.envelope,
                     'from': source, 'to': target})
    return rows


def check_config(conf, routes):
    rabbit = checks.rabbitmq(conf)
    zaqar = checks.zaqar(conf)
    rabbit_url = amqp_connection.redact(conf.transport_url)
    sides = [{'side': 'RabbitMQ', 'address': rabbit_url,
              'status': 'unreachable: %s' % rabbit if rabbit else 'ok'},
             {'side': 'Zaqar', 'address': conf.zaqar.url,
              'status': 'unreachable: %s' % zaqar if zaqar else 'ok'}]
    problems = []
    if rabbit:
        problems.append('RabbitMQ at %s is unreachable: %s'
                        % (rabbit_url, rabbit))
    if zaqar:
        problems.append('Zaqar at %s is unreachable: %s'
                        % (conf.zaqar.url, zaqar))
    idle, notes = (None, []) if rabbit else _idle_queues(conf, routes)
    if conf.command.format == 'json':
        document = {'routes': _route_rows(routes), 'connections': sides,
                    'problems': problems}
        if idle is not None:
            document['idle_queues'] = idle
        print(output.to_json(document))
    else:
        print(output.table(_route_rows(routes), 'Routes:'))
        print()
        print(output.table(sides, 'Connections:'))
        if idle is not None:
            print()
            print(output.table(idle, 'Queues without consumers where the '
                               'routes\' messages go (%s, vhost %s):' % (
                                   conf.command.rabbitmqctl,
                                   amqp_connection.connection(conf)
                                   .virtual_host)))
    for line in problems + notes:
        sys.stderr.write('%s: %s\n' % (cli.PROG, line))
    return 1 if problems else 0


def _idle_queues(conf, routes):
    """Consumerless queues the routes feed: (rows or None, warning lines).

    ``None`` rows: not checked (no rabbitmqctl, or it failed).
    """
    command = conf.command.rabbitmqctl
    if not command:
        return None, []
    vhost = amqp_connection.connection(conf).virtual_host
    try:
        rows = idle_queues.inspect(command, vhost, routes,
                                   idle_queues.own_queues(conf, routes))
    except admin.Failure as exc:
        return None, ['note: queues without consumers not checked (%s); '
                      'run check-config on a broker node or give '
                      '--rabbitmqctl' % exc]
    line = idle_queues.warning(rows)
    return rows, [line] if line else []


def show_routes(conf, routes):
    output.show(conf, _route_rows(routes))
    return 0


COMMANDS = {
    'check-config': (check_config, 'Validate the configuration, list the '
                     'routes, connect to RabbitMQ and Zaqar, and list '
                     'queues without consumers where the routes\' messages '
                     'go.', idle_queues.add_arguments),
    'routes': (show_routes, 'What each route binds, its tenant rule and '
               'its queues.', None),
}
# Commands with options of their own add their parsers themselves.
MODULES = (deadletter_commands, signed_url, status)


def add_command_parsers(subparsers):
    for name, (func, help_text, add_arguments) in COMMANDS.items():
        parser = cli.add_parser(subparsers, name, help=help_text)
        parser.set_defaults(func=func)
        cli.add_format_option(parser)
        if add_arguments:
            add_arguments(parser)
    for module in MODULES:
        module.add_parser(subparsers)


COMMAND_OPT = cfg.SubCommandOpt('command', title='Commands',
                                handler=add_command_parsers,
                                help='What to do.')


def _error(text, code):
    sys.stderr.write('%s: %s\n' % (cli.PROG, text))
    return code


DESCRIPTION = ('The operator\'s command line of amqp-zaqar-bridge: check '
               'its configuration and the servers it joins, list its '
               'routes and their flow, inspect, replay or purge dead '
               'letters, and issue pre-signed Zaqar URLs for guests. '
               '--config-file and --config-dir may come before or after '
               'the command.')
CONFIG_OPTIONS = ('--config-file', '--config-dir')


def config_options_first(argv):
    """``argv`` with the config file options moved before the command.

    They are options of the program, not of its commands, but an operator
    writes them anywhere (``check-config --config-file X``); each keeps
    its value and its order among the others.
    """
    first, rest = [], []
    args = iter(argv)
    for arg in args:
        if arg == '--':
            rest += [arg] + list(args)
        elif arg.split('=', 1)[0] in CONFIG_OPTIONS:
            first.append(arg)
            if '=' not in arg:
                first += [value for value in [next(args, None)]
                          if value is not None]
        else:
            rest.append(arg)
    return first + rest


def main(argv=None):
    conf = cfg.ConfigOpts()
    conf.register_cli_opt(COMMAND_OPT)
    argv = config_options_first(sys.argv[1:] if argv is None else argv)
    try:
        conf = config.prepare_service(argv, conf=conf,
                                      description=DESCRIPTION)
        routes = config.load_routes(conf)
    except config.ConfigError as exc:
        return _error(exc, 2)
    try:
        return conf.command.func(conf, routes)
    except admin.Failure as exc:
        return _error(exc, exc.exit_code)
    except KeyboardInterrupt:
        return _error('interrupted', 130)
    except Exception as exc:  # never a traceback for the operator
        LOG.debug('%s failed', conf.command.name, exc_info=True)
        return _error('%s failed: %s (--debug shows where)'
                      % (conf.command.name, backoff.error_text(exc)), 1)


if __name__ == '__main__':
    sys.exit(main())
