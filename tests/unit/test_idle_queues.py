"""Which consumerless queues check-config reports (canned rabbitmqctl)."""

import pytest

from bridge.admin import Failure
from bridge.admin import idle_queues
from tests.unit import confutil

ROUTES = '''
[route:guests]
direction = to_zaqar
exchange = trove
binding_keys = guestagent.*, guestagent.*.*
tenant = context:project_id
amqp_queue = bridge.guests
[route:events]
direction = to_zaqar
exchange = events
exchange_type = direct
binding_keys = created
tenant = static:p
[route:fan]
direction = to_zaqar
exchange = guestagent.x_fanout
exchange_type = fanout
tenant = static:p
[route:conductor]
direction = to_amqp
exchange = trove
zaqar_queue = trove-conductor
routing_key = trove-conductor
tenants = t
allowed_methods = heartbeat
[route:replies]
direction = to_amqp
exchange =
zaqar_queue = bridge_replies
tenants = t
'''


@pytest.mark.parametrize('a, b, meet', [
    ('guestagent.*', 'guestagent.abc', True),
    ('guestagent.*', 'guestagent.abc.abc', False),
    ('guestagent.*.*', 'guestagent.abc.abc', True),
    ('guestagent.*', 'trove-conductor', False),
    ('#', 'any.thing', True),
    ('a.#', 'a', True),
    ('a.#.c', 'a.*', True),      # a.c
    ('a.*', 'b.*', False),
    ('*.x', 'y.*', True),        # y.x
    ('#.a', 'b.#', True),        # b.a
    ('a.#.b', 'a.#.c', False),
    ('a', 'a.b', False),
    ('*.*', '#', True),
    ('*.*', 'a', False),
])
def test_topic_overlap(a, b, meet):
    assert idle_queues.topic_overlap(a, b) is meet
    assert idle_queues.topic_overlap(b, a) is meet


def binding(exchange, queue, key):
    return {'source_name': exchange, 'source_kind': 'exchange',
            'destination_name': queue, 'destination_kind': 'queue',
            'routing_key': key}


def test_find_reports_consumerless_queues_where_routes_send(tmp_path):
    conf, routes = confutil.load(
        tmp_path, ROUTES, routes='guests, events, fan, conductor, replies')
    bindings = [
        binding('trove', 'guestagent.g1', 'guestagent.g1'),
        binding('trove', 'guestagent.g1.g1', 'guestagent.g1.g1'),
        binding('trove', 'guestagent.live', 'guestagent.live'),
        binding('trove', 'bridge.guests', 'guestagent.*'),
        binding('trove', 'other', 'compute.x'),
        binding('trove', 'trove-conductor', 'trove-conductor'),
        binding('events', 'events-old', 'created'),
        binding('events', 'events-deleted', 'deleted'),
        binding('guestagent.x_fanout', 'guestagent.x_fanout_1', ''),
        binding('', 'bridge_replies', 'bridge_replies'),
        binding('elsewhere', 'guestagent.g2', 'guestagent.g2'),
        {'source_name': 'trove', 'source_kind': 'exchange',
         'destination_name': 'sub-exchange', 'destination_kind': 'exchange',
         'routing_key': 'guestagent.g3'},
    ]
    idle = ['guestagent.g1', 'guestagent.g1.g1', 'bridge.guests', 'other',
            'trove-conductor', 'events-old', 'events-deleted',
            'guestagent.x_fanout_1', 'bridge_replies', 'guestagent.g2']
    queues = [{'name': q, 'consumers': 0, 'messages': i}
              for i, q in enumerate(idle)]
    queues.append({'name': 'guestagent.live', 'consumers': 1,
                   'messages': 0})
    rows = idle_queues.find(routes, bindings, queues,
                            idle_queues.own_queues(conf, routes))
    assert [(r['route'], r['queue'], r['binding_key'], r['messages'])
            for r in rows] == [
        ('conductor', 'trove-conductor', 'trove-conductor', 4),
        ('events', 'events-old', 'created', 5),
        ('fan', 'guestagent.x_fanout_1', '', 7),
        ('guests', 'guestagent.g1', 'guestagent.g1', 0),
        ('guests', 'guestagent.g1.g1', 'guestagent.g1.g1', 1)]
    # Two routes feeding one queue: one row each; the warning counts the
    # queue once.
    rows = idle_queues.find(routes, [binding('trove', 'q', 'trove-conductor'),
                                     binding('trove', 'q', 'guestagent.q')],
                            [{'name': 'q', 'consumers': 0, 'messages': 2}])
    assert [r['route'] for r in rows] == ['conductor', 'guests']
    assert idle_queues.warning(rows).startswith(
        'warning: 1 queue(s) bound where the routes\' messages go have no '
        'consumer and keep every message routed to them (2 now): q; ')
    assert idle_queues.warning([]) is None


def test_warning_names_five_queues_at_most():
    rows = [{'route': 'r', 'queue': 'q%d' % i, 'messages': 1}
            for i in range(7)]
    assert ': q0, q1, q2, q3, q4, ...; ' in idle_queues.warning(rows)


@pytest.mark.parametrize('command, error', [
    ('/nonexistent/rabbitmqctl', '/nonexistent/rabbitmqctl: [Errno 2]'),
    ('false', 'false list_bindings exited with 1: no output'),
    ("sh -c 'echo Error: unable to perform an operation on node >&2; "
     "exit 69'",
     'exited with 69: Error: unable to perform an operation on node'),
    ("sh -c 'echo not json'", 'list_bindings: not JSON'),
])
def test_inspect_says_why_it_could_not_look(tmp_path, command, error):
    conf, routes = confutil.load(tmp_path, ROUTES, routes='guests')
    with pytest.raises(Failure) as exc:
        idle_queues.inspect(command, '/', routes)
    assert error in str(exc.value)
    assert '\n' not in str(exc.value)
