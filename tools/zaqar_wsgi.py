"""zaqar-server's wsgi app for gunicorn (tools/zaqar-server.sh --gunicorn).

zaqar.transport.wsgi.app reads its config only from the standard paths
(/etc/zaqar/...); this one reads the file named by $ZAQAR_CONFIG_FILE.
gunicorn imports it in each worker, so every worker has its own storage
connections and notification pipeline.
"""

import os

from oslo_config import cfg
from zaqar import bootstrap

cfg.CONF(project='zaqar', args=['--config-file',
                                os.environ['ZAQAR_CONFIG_FILE']])
application = bootstrap.Bootstrap(cfg.CONF).transport.app
