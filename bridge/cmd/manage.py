"""amqp-zaqar-bridge-manage: the operator's command line."""

import json
import sys

from oslo_config import cfg

from bridge.amqp import connection as amqp_connection
from bridge import checks
from bridge import service


def _print(conf, rows, title=None):
    if conf.command.format == 'json':
        print(json.dumps(rows, indent=2, sort_keys=True))
        return
    if title:
        print(title)
    if not rows:
        print('(none)')
        return
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    print('  '.join(k.ljust(w) for k, w in zip(keys, widths)))
    print('  '.join('-' * w for w in widths))
    for row in rows:
        print('  '.join(str(row[k]).ljust(w) for k, w in zip(keys, widths)))


def _route_rows(routes):
    rows = []
    for r in routes:
        if r.direction == 'to_zaqar':
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
    _print(conf, _route_rows(routes), 'Routes:')
    failures = []
    rabbit = checks.rabbitmq(conf)
    zaqar = checks.zaqar(conf)
    sides = [{'side': 'RabbitMQ',
              'address': amqp_connection.redact(conf.transport_url),
              'status': 'unreachable: %s' % rabbit if rabbit else 'ok'},
             {'side': 'Zaqar', 'address': conf.zaqar.url,
              'status': 'unreachable: %s' % zaqar if zaqar else 'ok'}]
    if conf.command.format != 'json':
        print()
    _print(conf, sides, 'Connections:')
    if rabbit:
        failures.append('RabbitMQ at %s is unreachable: %s'
                        % (amqp_connection.redact(conf.transport_url),
                           rabbit))
    if zaqar:
        failures.append('Zaqar at %s is unreachable: %s'
                        % (conf.zaqar.url, zaqar))
    for line in failures:
        sys.stderr.write('amqp-zaqar-bridge-manage: %s\n' % line)
    return 1 if failures else 0


def show_routes(conf, routes):
    _print(conf, _route_rows(routes))
    return 0


COMMANDS = {
    'check-config': (check_config, 'Validate the configuration, list the '
                     'routes and connect to RabbitMQ and Zaqar.'),
    'routes': (show_routes, 'What each route binds, its tenant rule and '
               'its queues.'),
}


def add_command_parsers(subparsers):
    for name, (func, help_text) in COMMANDS.items():
        parser = subparsers.add_parser(name, help=help_text)
        parser.set_defaults(func=func)
        parser.add_argument('--format', choices=['table', 'json'],
                            default='table', help='Output format.')


COMMAND_OPT = cfg.SubCommandOpt('command', title='Commands',
                                handler=add_command_parsers,
                                help='What to do.')


def main(argv=None):
    conf = cfg.ConfigOpts()
    conf.register_cli_opt(COMMAND_OPT)
    try:
        conf = service.prepare_service(argv, conf=conf)
        routes = service.load_routes(conf)
    except service.ConfigError as exc:
        sys.stderr.write('amqp-zaqar-bridge-manage: %s\n' % exc)
        return 2
    return conf.command.func(conf, routes)


if __name__ == '__main__':
    sys.exit(main())
