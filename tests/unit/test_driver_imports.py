"""The guest driver imports nothing of the daemon.

A guest agent loads ``zaqar://`` through oslo.messaging's entry point; it
must not pull in the bridge daemon (routes, Keystone trusts, cotyledon,
metrics...).  Checked in a fresh interpreter, where nothing else has
imported those modules already.
"""

import json
import subprocess
import sys

# The bridge modules the driver may import: its own package, the pure
# shared modules and the config-free Zaqar HTTP client both sides share.
ALLOWED = ('bridge', 'bridge.drivers', 'bridge.naming', 'bridge.wire',
           'bridge.envelope', 'bridge.jsoncodec', 'bridge.backoff',
           'bridge.zaqar_http')
OWN_PACKAGE = 'bridge.drivers.zaqar'
# Third-party packages only the daemon uses (kombu: the driver never
# speaks AMQP; oslo.messaging loads its rabbit driver only on demand).
DAEMON_LIBRARIES = ('cotyledon', 'prometheus_client', 'kombu', 'amqp')

PROBE = '''
import json, sys
from oslo_config import cfg
import oslo_messaging
conf = cfg.ConfigOpts()
conf([], project='guest')
transport = oslo_messaging.get_rpc_transport(
    conf, url='zaqar://guest-project@127.0.0.1:1/')
name = type(transport._driver).__module__
transport.cleanup()
print(json.dumps({'driver': name, 'modules': sorted(sys.modules)}))
'''


def loaded_by_the_driver():
    out = subprocess.run([sys.executable, '-c', PROBE], check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def daemon_modules(modules):
    bridge = [m for m in modules
              if (m == 'bridge' or m.startswith('bridge.'))
              and m not in ALLOWED and m != OWN_PACKAGE
              and not m.startswith(OWN_PACKAGE + '.')]
    libraries = [m for m in modules if m.split('.')[0] in DAEMON_LIBRARIES]
    return bridge + libraries


def test_driver_imports_nothing_of_the_daemon():
    found = loaded_by_the_driver()
    # The probe really loaded the driver through the entry point.
    assert found['driver'] == 'bridge.drivers.zaqar.driver'
    assert 'bridge.drivers.zaqar.transport' in found['modules']
    assert daemon_modules(found['modules']) == []


def test_the_check_sees_daemon_modules():
    # What the test above would report if the driver imported the daemon.
    assert daemon_modules(['bridge.zaqar.client', 'bridge.zaqar.trusts',
                           'bridge.routes.route', 'bridge.daemon.config',
                           'bridge.metrics', 'cotyledon._service',
                           'bridge.drivers.zaqar.driver', 'bridge.wire']) == [
        'bridge.zaqar.client', 'bridge.zaqar.trusts', 'bridge.routes.route',
        'bridge.daemon.config', 'bridge.metrics', 'cotyledon._service']
