"""A pytest plugin for oslo.messaging's functional suite: lift its scheme gate.

``CallTestCase.test_mandatory_call`` and ``test_monitor_long_call`` begin
with ``if not self.rpc_url.startswith("rabbit://"): self.skipTest(...)``:
the suite assumes only the rabbit driver has the mandatory flag
(``at_least_once``) and call monitoring.  zaqar:// has both, so
tests/functional/test_oslo_functional.py runs those two tests a second time
with this plugin, which makes that one question answer "yes" for the
zaqar:// URL.  Nothing else changes: the URL the tests connect with is the
zaqar:// URL, and the test bodies are oslo.messaging's, unmodified.
"""

from oslo_messaging.tests.functional import utils

GATED = ('rabbit://', 'amqp://')


class _Url(str):
    """The same URL; ``startswith`` of a gated scheme says True."""

    def startswith(self, prefix, *args):
        if prefix in GATED:
            return True
        return super().startswith(prefix, *args)


_setup = utils.SkipIfNoTransportURL.setUp


def _gate_lifted_setup(self, *args, **kwargs):
    _setup(self, *args, **kwargs)
    if self.rpc_url:
        self.rpc_url = _Url(self.rpc_url)


utils.SkipIfNoTransportURL.setUp = _gate_lifted_setup
