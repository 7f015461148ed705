"""Topics longer than Zaqar's 64 characters, through the daemon and a guest.

A server's own topic, ``guestagent.<id>.<server>`` (Trove's guest agent
listens on ``guestagent.<id>.<id>``), is longer than Zaqar allows; the
bridge and the guest driver must both shorten it to the same queue.
"""

import uuid

import pytest

from bridge import naming
from tests.functional import bridgeutil
from tests.functional.test_driver_standalone import guest_url  # noqa: F401
from tests.functional.test_guest_driver import controller_client
from tests.functional.test_guest_driver import daemon  # noqa: F401
from tests.functional.test_guest_driver import GuestAgent
from tests.functional.test_guest_driver import guest_server
from tests.functional.test_guest_driver import stop

pytestmark = pytest.mark.functional


def test_controller_reaches_a_server_queue_longer_than_64(
        daemon, rabbit, zaqar, guest_url, names):  # noqa: F811
    server = str(uuid.uuid4())
    topic = 'guestagent.%s' % names.guest
    queue = naming.queue_name('%s.%s' % (topic, server))
    assert len('%s.%s' % (topic, server)) > 64 and len(queue) == 64
    ctxt = {'project_id': names.tenant_a}
    client = controller_client(rabbit, names).prepare(server=server)
    # The bridge posts a cast to that server into the shortened queue...
    client.cast(ctxt, 'prepare', seen='in zaqar')
    (body,) = bridgeutil.drain(zaqar.client(names.tenant_a).queue(queue), 1)
    assert body['message']['args'] == {'seen': 'in zaqar'}
    assert body['routing_key'] == '%s.%s' % (topic, server)
    # ... and the guest driver listens on the same one.
    agent = GuestAgent('a')
    srv = guest_server(guest_url(names.tenant_a), topic, server, agent,
                       names.exchange)
    try:
        assert client.call(ctxt, 'get_status', x=1) == {
            'guest': 'a', 'project': names.tenant_a, 'args': {'x': 1}}
        client.cast(ctxt, 'prepare', memory=512)
        bridgeutil.wait_until(lambda: agent.casts, what='the cast')
        assert agent.casts == [{'memory': 512}]
    finally:
        stop(*srv)
