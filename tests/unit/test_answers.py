"""One final answer per call: any run of a guest's answers (hypothesis).

Whatever a guest posts with one reply token, in any order and over any
time, what the reverse path publishes (translate, then record once
"confirmed", as bridge/flows/reverse.py does) is: heartbeats in the exact
shape an oslo.messaging server sends, only when the caller asked for
them, none after the final answer, never two within the allowed gap, and
one final answer: the first good one that was confirmed.
"""

import json
import time
import types
from unittest import mock

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from bridge import envelope
from bridge.reject import Reject
from bridge.rpc import relay
from bridge import tokens
from bridge.translate import to_amqp
from tests.unit import confutil

values = st.none() | st.booleans() | st.integers() | st.text(max_size=5) \
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
answers = st.one_of(
    st.just({'result': None, 'failure': None, 'ending': False}),
    st.just({'ending': False}),
    st.builds(lambda r: {'result': r, 'failure': None, 'ending': True},
              values),
    st.fixed_dictionaries({}, optional={
        'result': values, 'failure': values, 'ending': values,
        '_msg_id': values}))
# (seconds since the previous answer, the answer, published or lost)
runs = st.lists(st.tuples(st.sampled_from([0, 0.5, 1, 2, 5, 20])
                          | st.floats(0, 30), answers, st.booleans()),
                max_size=12)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    conf, routes = confutil.load(tmp_path_factory.mktemp('conf'),
                                 confutil.ROUTES, routes='rev')
    return conf, routes[0]


@settings(max_examples=300, deadline=None)
@given(run=runs, monitor=st.sampled_from([0, 2, 8, 60]))
def test_at_most_one_final_answer_and_heartbeats_as_asked(setup, run,
                                                          monitor):
    conf, route = setup
    token = tokens.sign(conf.rpc.reply_secret, tokens.AMQP_REPLY, 'reply_c',
                        'm1', 'tenant-a', 3600, answer_queue='replies',
                        monitor=monitor)
    used = tokens.UsedTokens()
    gap = max(relay.MIN_HEARTBEAT_GAP, monitor / 4.0)
    now = time.time()
    published = []   # (time, answer as the caller reads it)
    for wait, message, confirmed in run:
        now += wait
        body = {'bridge': 1, 'reply_token': token, 'message': message}
        clock = types.SimpleNamespace(time=lambda at=now: at)
        try:
            with mock.patch.object(tokens, 'time', clock):
                out = to_amqp.translate(route, conf, 'tenant-a', 'replies',
                                        body, 'zid', used)
        except Reject:
            continue
        if not confirmed:   # the connection failed: nothing is recorded
            continue
        token_, expires, final = out.answer
        used.published(token_, expires, final, now=now)
        reply = envelope.unwrap(json.dumps(out.body))
        assert reply.pop('_unique_id')
        assert reply['_msg_id'] == 'm1'
        assert reply['ending'] is final
        published.append((now, reply))
    finals = [r for _, r in published if r['ending']]
    beats = [(t, r) for t, r in published if not r['ending']]
    assert len(finals) <= 1
    # Refused or lost answers use nothing: a good final answer that was
    # confirmed got through.
    if any(confirmed and message.get('ending', True) is True
           and isinstance(message.get('failure'), (str, type(None)))
           for _, message, confirmed in run):
        assert finals
    if finals:
        assert published[-1][1] is finals[0]
        assert finals[0]['failure'] is None or \
            isinstance(finals[0]['failure'], str)
    assert not beats or monitor >= 2
    for _, beat in beats:
        assert beat == {'result': None, 'failure': None, 'ending': False,
                        '_msg_id': 'm1'}
    times = [t for t, _ in beats]
    assert all(b - a >= gap for a, b in zip(times, times[1:]))
