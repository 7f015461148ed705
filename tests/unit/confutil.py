"""Build a bridge configuration from text, as the daemon would."""

import textwrap

from bridge.daemon import config

BASE = '''
[DEFAULT]
routes = {routes}
[rpc]
reply_secret = test-secret
'''


def load(tmp_path, text, routes='r1', base=True):
    path = tmp_path / 'bridge.conf'
    content = (BASE.format(routes=routes) if base else '') + \
        textwrap.dedent(text)
    path.write_text(content)
    conf = config.prepare_service(['--config-file', str(path)])
    return conf, config.load_routes(conf)
