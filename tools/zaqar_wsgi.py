"""zaqar-server's wsgi app for gunicorn (tools/zaqar-server.sh --gunicorn).

zaqar.transport.wsgi.app reads its config only from the standard paths
(/etc/zaqar/...); this one reads the files named by $ZAQAR_CONFIG_FILE
(separated by colons; a later file's options win).
gunicorn imports it in each worker, so every worker has its own storage
connections and notification pipeline.
"""

import os

from oslo_config import cfg
from zaqar import bootstrap

args = []
for path in os.environ['ZAQAR_CONFIG_FILE'].split(os.pathsep):
    args += ['--config-file', path]
cfg.CONF(project='zaqar', args=args)
application = bootstrap.Bootstrap(cfg.CONF).transport.app
