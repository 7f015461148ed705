"""amqp-zaqar-bridge: the daemon."""

import sys

from bridge.daemon import config
from bridge.daemon import manager


DESCRIPTION = ('Bridge selected RabbitMQ (oslo.messaging) traffic to '
               'per-tenant Zaqar queues and back, as the [route:NAME] '
               'sections of the configuration say, so guests in tenant VMs '
               'talk to the control plane without reaching its broker. '
               'Runs in the foreground; SIGHUP reloads the configuration. '
               'amqp-zaqar-bridge-manage checks and inspects it.')


def main(argv=None):
    try:
        conf = config.prepare_service(argv, description=DESCRIPTION)
        routes = config.load_routes(conf)
    except config.ConfigError as exc:
        sys.stderr.write('amqp-zaqar-bridge: %s\n' % exc)
        return 2
    manager.build(conf, routes).run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
