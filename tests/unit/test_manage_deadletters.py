"""Reading dead letters: what list, show and replay make of one."""

import json

import kombu

from bridge.admin import deadletters


def letter(index=1, body=b'{}', content_type='application/json', **headers):
    message = kombu.Message(body=body, content_type=content_type,
                            content_encoding='utf-8', headers=headers)
    return deadletters.DeadLetter(index, message)


FORWARD = {'x-bridge-route': 'guests', 'x-bridge-direction': 'to_zaqar',
           'x-bridge-reason': 'tenant rule context:project_id: no project',
           'x-bridge-message-id': 'm-1', 'x-bridge-exchange': 'trove',
           'x-bridge-routing-key': 'guestagent.1',
           'x-bridge-dead-lettered-at': 1700000000, 'x-tenant': 't1'}
REVERSE = {'x-bridge-route': 'conductor', 'x-bridge-direction': 'to_amqp',
           'x-bridge-reason': "method 'x' is not in allowed_methods",
           'x-bridge-message-id': 'm-2', 'x-bridge-tenant': 'tenant-a',
           'x-bridge-zaqar-queue': 'conductor',
           'x-bridge-dead-lettered-at': b'1700000060'}


def test_summary_of_a_forward_dead_letter():
    assert letter(**FORWARD).summary() == {
        'index': 1, 'route': 'guests', 'direction': 'to_zaqar',
        'reason': 'tenant rule context:project_id: no project',
        'message_id': 'm-1', 'from': "exchange 'trove' key guestagent.1",
        'dead_lettered_at': 1700000000}


def test_summary_of_a_reverse_dead_letter():
    summary = letter(**REVERSE).summary()
    assert summary['from'] == 'tenant tenant-a queue conductor'
    assert summary['dead_lettered_at'] == 1700000060


def test_table_row_shortens_the_reason_and_shows_utc_time():
    row = letter(**dict(FORWARD, **{'x-bridge-reason': 'x' * 200})).row()
    assert len(row['reason']) == 60 and row['reason'].endswith('...')
    assert row['dead_lettered_at'] == '2023-11-14 22:13:20Z'


def test_missing_headers_do_not_break_anything():
    row = letter().row()
    assert row['route'] == '' and row['message_id'] == ''
    assert row['dead_lettered_at'] == '-'


def test_replay_headers_keep_the_original_and_the_origin():
    assert letter(**FORWARD).replay_headers() == {
        'x-tenant': 't1', 'x-bridge-exchange': 'trove',
        'x-bridge-routing-key': 'guestagent.1'}


def test_body_json_text_and_binary():
    assert letter(body=b'{"a": 1}').body() == ('json', {'a': 1})
    assert letter(body=b'{{{').body() == ('text', '{{{')
    assert letter(body=b'\x00\xff').body() == ('base64', 'AP8=')


def test_details_decode_the_oslo_envelope():
    inner = {'method': 'resize', 'args': {'size': 2}}
    body = json.dumps({'oslo.version': '2.0',
                       'oslo.message': json.dumps(inner)}).encode()
    details = letter(body=body, **FORWARD).details()
    assert details['oslo_message'] == inner
    assert details['headers']['x-bridge-route'] == 'guests'
    assert 'oslo_message' not in letter(body=b'[1]').details()


def test_select_by_route_message_id_or_index():
    letters = [letter(1, **FORWARD), letter(2, **REVERSE),
               letter(3, **dict(FORWARD, **{'x-bridge-message-id': '2'}))]
    pick = deadletters.select
    assert [x.index for x in pick(letters, route='guests')] == [1, 3]
    assert [x.index for x in pick(letters, ident='m-2')] == [2]
    # A message id wins over an index; an index when no id matches.
    assert [x.index for x in pick(letters, ident='2')] == [3]
    assert [x.index for x in pick(letters, ident='1')] == [1]
    assert pick(letters, route='conductor', ident='m-1') == []
    assert pick(letters, ident='nope') == []
