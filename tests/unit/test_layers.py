"""Each layer imports only from its own layer or below (README, Layout).

Checked in a clean interpreter: importing a layer's modules must not load
a module of a layer above it.
"""

import json
import subprocess
import sys

import pytest

ADAPTERS = ['bridge.amqp.acks', 'bridge.amqp.connection',
            'bridge.amqp.consumer', 'bridge.amqp.publisher',
            'bridge.amqp.topology', 'bridge.zaqar.client',
            'bridge.zaqar.clients', 'bridge.zaqar.doorbell',
            'bridge.zaqar.options', 'bridge.zaqar.trusts',
            'bridge.zaqar_http']
PURE = ['bridge.backoff', 'bridge.batch', 'bridge.bounds',
        'bridge.confcheck', 'bridge.context', 'bridge.envelope',
        'bridge.jsoncodec', 'bridge.naming', 'bridge.reject',
        'bridge.tokens', 'bridge.wire', 'bridge.tenant.rules']
ABOVE_ADAPTERS = ('bridge.routes', 'bridge.rpc', 'bridge.translate',
                  'bridge.flows', 'bridge.daemon', 'bridge.admin',
                  'bridge.cmd', 'bridge.opts', 'bridge.metrics')


def loaded(modules):
    code = ('import json, sys\n'
            'for name in %r:\n'
            '    __import__(name)\n'
            'print(json.dumps(sorted(m for m in sys.modules '
            'if m.startswith("bridge"))))' % (modules,))
    out = subprocess.run([sys.executable, '-c', code], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def above(found, layers):
    return [m for m in found
            if any(m == layer or m.startswith(layer + '.')
                   for layer in layers)]


@pytest.mark.parametrize('modules', [ADAPTERS, PURE])
def test_adapters_and_pure_modules_load_nothing_above_them(modules):
    found = loaded(modules)
    assert set(modules) <= set(found)       # the check saw them load
    assert above(found, ABOVE_ADAPTERS) == []


def test_flows_load_no_daemon_side():
    found = loaded(['bridge.flows.forward', 'bridge.flows.reverse'])
    assert 'bridge.flows.reverse' in found
    assert above(found, ('bridge.daemon', 'bridge.admin', 'bridge.cmd',
                         'bridge.opts')) == []


def test_routes_rpc_translate_load_no_flows():
    found = loaded(['bridge.routes.load', 'bridge.rpc.replies',
                    'bridge.rpc.relay', 'bridge.translate.to_zaqar',
                    'bridge.translate.to_amqp'])
    assert 'bridge.translate.to_amqp' in found
    assert above(found, ('bridge.flows', 'bridge.daemon', 'bridge.admin',
                         'bridge.cmd', 'bridge.amqp', 'bridge.zaqar')) == []
    # routes know nothing of RPC nor translation
    routes_only = loaded(['bridge.routes.load'])
    assert above(routes_only, ('bridge.rpc', 'bridge.translate')) == []
