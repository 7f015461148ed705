"""amqp-zaqar-bridge: the daemon."""

import sys

from bridge import daemon
from bridge import service


def main(argv=None):
    try:
        conf = service.prepare_service(argv)
        routes = service.load_routes(conf)
    except service.ConfigError as exc:
        sys.stderr.write('amqp-zaqar-bridge: %s\n' % exc)
        return 2
    daemon.build(conf, routes).run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
