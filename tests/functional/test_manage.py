"""amqp-zaqar-bridge-manage dead-letters, signed-url and status, for real.

Dead letters are made by the running daemon (an undecodable body and a
message without a tenant on a to_zaqar route, a method the to_amqp route
does not allow), then listed, shown, replayed once the configuration is
fixed, and purged, with the command as installed.
"""

import http.server
import json
import socket
import threading
import time

import kombu
import pytest
from zaqarclient.queues.v2 import client as zaqar_v2
from zaqarclient.transport import errors as zaqar_errors

from tests.functional import bridgeutil

pytestmark = pytest.mark.functional

EXPOSITION = '''\
# HELP bridge_messages_received_total Messages received.
# TYPE bridge_messages_received_total counter
bridge_messages_received_total{route="guests"} 12.0
# TYPE bridge_messages_forwarded_total counter
bridge_messages_forwarded_total{route="guests"} 10.0
# TYPE bridge_messages_dead_lettered_total counter
bridge_messages_dead_lettered_total{route="guests"} 2.0
# TYPE bridge_connection_up gauge
bridge_connection_up{route="guests",side="rabbitmq"} 1.0
bridge_connection_up{route="guests",side="zaqar"} 0.0
# TYPE bridge_workers gauge
bridge_workers{route="guests"} 2.0
# TYPE bridge_workers_configured gauge
bridge_workers_configured{route="guests"} 2.0
'''


def write_config(tmp_path, rabbit, zaqar, names, fixed=False):
    """Broken: no header tenant rule, drop_everything not allowed."""
    routes = [
        ('guests', '''
            direction = to_zaqar
            exchange = %s
            binding_keys = guestagent.*
            tenant = %s
            amqp_queue = %s
            ''' % (names.exchange,
                   'header:x-tenant' if fixed else 'context:project_id',
                   names.amqp_queue)),
        ('conductor', '''
            direction = to_amqp
            exchange = %s
            zaqar_queue = %s
            tenants = %s
            allowed_methods = heartbeat%s
            poll_interval = 0.2
            ''' % (names.exchange, names.conductor, names.tenant_a,
                   ', drop_everything' if fixed else '')),
    ]
    return bridgeutil.write_config(
        tmp_path / ('fixed.conf' if fixed else 'bridge.conf'), rabbit, zaqar,
        routes, extra=bridgeutil.dead_letter_section(names.dlq))


@pytest.fixture
def cleanup(rabbit, names):
    configs = []
    yield configs
    for config in configs:
        bridgeutil.delete_queues(rabbit, config)
    with kombu.Connection(rabbit.kombu_url) as conn:
        for queue in (names.dlq, names.amqp_queue):
            try:
                conn.default_channel.queue_delete(queue)
            except conn.channel_errors:
                pass


def manage(config, *args, code=0):
    result = bridgeutil.run_manage(config, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert 'Traceback' not in result.stderr
    return result


def listed(config, *args):
    result = manage(config, 'dead-letters', 'list', '--format', 'json',
                    *args)
    return json.loads(result.stdout)


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('amqp-zaqar-bridge-manage')
    return lines[0]


def make_dead_letters(rabbit, zaqar, names):
    exchange = kombu.Exchange(names.exchange, 'topic', durable=False)
    no_tenant = json.dumps({'oslo.version': '2.0', 'oslo.message': json.dumps(
        {'method': 'resize', 'args': {'size': 2},
         '_unique_id': 'no-tenant-%s' % names.guest})})
    with kombu.Connection(rabbit.kombu_url) as conn:
        producer = conn.Producer()
        for body, headers in ((b'{{{', {'case': 'garbage'}),
                              (no_tenant, {'x-tenant': names.tenant_b})):
            producer.publish(body, exchange=exchange,
                             routing_key='guestagent.%s' % names.guest,
                             content_type='application/json',
                             content_encoding='utf-8', headers=headers)
    zaqar.client(names.tenant_a).queue(names.conductor).post([{
        'ttl': 300, 'body': {'bridge': 1, 'message': {
            'method': 'drop_everything', 'args': {'why': 'test'},
            '_unique_id': 'drop-%s' % names.guest}}}])


def test_dead_letters_list_show_replay_purge(tmp_path, rabbit, zaqar, names,
                                             conductor, cleanup):
    config = write_config(tmp_path, rabbit, zaqar, names)
    cleanup.append(config)
    daemon = bridgeutil.Daemon(config, tmp_path / 'bridge.log').start(3)
    try:
        make_dead_letters(rabbit, zaqar, names)
        letters = bridgeutil.wait_until(
            lambda: (lambda got: len(got) == 3 and got)(listed(config)),
            what='three dead letters')
        flow = {row['route']: row for row in json.loads(manage(
            config, 'status', '--format', 'json').stdout)}
        assert flow['guests']['dead_lettered'] == 2
        assert flow['conductor']['dead_lettered'] == 1
        assert flow['guests']['workers'] == '1/1'
        assert flow['guests']['connections'] == 'rabbitmq up, zaqar up'
    finally:
        assert daemon.stop() == 0
    by_route = {}
    for letter in letters:
        by_route.setdefault(letter['route'], []).append(letter)
    garbage, no_tenant = sorted(by_route['guests'],
                                key=lambda x: x['message_id'].startswith(
                                    'no-tenant'))
    (drop,) = by_route['conductor']
    assert 'bad oslo.messaging envelope' in garbage['reason']
    assert no_tenant['message_id'] == 'no-tenant-%s' % names.guest
    assert 'tenant rule context:project_id' in no_tenant['reason']
    assert no_tenant['direction'] == 'to_zaqar'
    assert no_tenant['from'] == "exchange %r key guestagent.%s" % (
        names.exchange, names.guest)
    assert "'drop_everything' is not in allowed_methods" in drop['reason']
    assert drop['direction'] == 'to_amqp'
    assert drop['from'] == 'tenant %s queue %s' % (names.tenant_a,
                                                   names.conductor)
    assert abs(drop['dead_lettered_at'] - time.time()) < 120
    # Listing consumes nothing and keeps the order.
    assert listed(config) == letters
    assert [x['index'] for x in letters] == [1, 2, 3]
    assert len(listed(config, '--limit', '1')) == 1
    assert [x['route'] for x in listed(config, '--route', 'conductor')] == [
        'conductor']

    table = manage(config, 'dead-letters', 'list').stdout
    assert 'Dead letters in %s: 3 waiting, 3 shown' % names.dlq in table
    for column in ('index', 'route', 'direction', 'reason', 'message_id',
                   'from', 'dead_lettered_at'):
        assert column in table.splitlines()[1]
    assert 'no-tenant-%s' % names.guest in table

    (shown,) = json.loads(manage(config, 'dead-letters', 'show',
                                 drop['message_id'], '--format',
                                 'json').stdout)
    assert shown['headers']['x-bridge-tenant'] == names.tenant_a
    assert shown['body_encoding'] == 'json'
    assert shown['body']['body']['message']['method'] == 'drop_everything'
    text = manage(config, 'dead-letters', 'show',
                  str(no_tenant['index'])).stdout
    assert 'x-bridge-reason: tenant rule context:project_id' in text
    assert '"method": "resize"' in text  # the envelope, pretty
    shown = json.loads(manage(config, 'dead-letters', 'show',
                              str(garbage['index']), '--format',
                              'json').stdout)
    assert shown[0]['body'] == '{{{'

    dry = manage(config, 'dead-letters', 'replay', '--dry-run').stdout
    assert dry.count('would be replayed') == 3
    assert 'amqp queue %s' % names.amqp_queue in dry
    assert 'zaqar queue %s of tenant %s' % (names.conductor,
                                            names.tenant_a) in dry
    assert listed(config) == letters

    fixed = write_config(tmp_path, rabbit, zaqar, names, fixed=True)
    cleanup.append(fixed)
    daemon = bridgeutil.Daemon(fixed, tmp_path / 'fixed.log').start(3)
    try:
        out = json.loads(manage(fixed, 'dead-letters', 'replay', '--id',
                                no_tenant['message_id'], '--format',
                                'json').stdout)
        assert [x['result'] for x in out] == ['replayed']
        (body,) = bridgeutil.drain(zaqar.client(names.tenant_b).queue(
            'guestagent_%s' % names.guest), 1)
        assert body['message']['method'] == 'resize'
        assert body['routing_key'] == 'guestagent.%s' % names.guest

        out = manage(fixed, 'dead-letters', 'replay', '--route',
                     'conductor').stdout
        assert 'replayed' in out
        bridgeutil.wait_until(lambda: conductor.calls,
                              what='drop_everything at the conductor')
        method, ctxt, kwargs = conductor.calls[0]
        assert (method, kwargs) == ('drop_everything', {'why': 'test'})
        assert ctxt['project_id'] == names.tenant_a
    finally:
        assert daemon.stop() == 0
    assert [x['message_id'] for x in listed(fixed)] == [
        garbage['message_id']]

    refused = manage(fixed, 'dead-letters', 'purge', code=2)
    assert '--yes' in one_error_line(refused)
    assert len(listed(fixed)) == 1
    purged = manage(fixed, 'dead-letters', 'purge', '--yes').stdout
    assert 'purged' in purged
    assert listed(fixed) == []
    assert '(none)' in manage(fixed, 'dead-letters', 'list').stdout


def put_dead_letter(rabbit, names, body, **headers):
    with kombu.Connection(rabbit.kombu_url) as conn:
        queue = kombu.Queue(names.dlq, durable=True, auto_delete=False,
                            channel=conn.default_channel)
        queue.declare()
        conn.Producer().publish(body, exchange='', routing_key=names.dlq,
                                headers=dict(headers),
                                content_type='application/octet-stream',
                                content_encoding='binary')


def test_replay_refuses_what_it_cannot_replay(tmp_path, rabbit, zaqar,
                                              names, cleanup):
    config = write_config(tmp_path, rabbit, zaqar, names)
    cleanup.append(config)
    assert listed(config) == []  # no dead-letter queue yet: none
    put_dead_letter(rabbit, names, b'\x00\xffbinary', **{
        'x-bridge-route': 'ghost', 'x-bridge-direction': 'to_zaqar',
        'x-bridge-reason': 'test', 'x-bridge-message-id': 'm-ghost'})
    put_dead_letter(rabbit, names, b'{}', **{
        'x-bridge-route': 'guests', 'x-bridge-direction': 'to_zaqar',
        'x-bridge-reason': 'test', 'x-bridge-message-id': 'm-noqueue'})
    result = manage(config, 'dead-letters', 'replay', '--id', 'm-ghost',
                    code=1)
    assert "route 'ghost' is not in [DEFAULT] routes" in \
        one_error_line(result)
    # The daemon never ran: the route's queue was never declared.
    result = manage(config, 'dead-letters', 'replay', '--route', 'guests',
                    code=1)
    assert 'queue %s of route guests does not exist' % names.amqp_queue in \
        one_error_line(result)
    result = manage(config, 'dead-letters', 'replay', '--id', 'nope', code=1)
    assert "no dead letter with message id or index 'nope'" in \
        one_error_line(result)
    assert [x['message_id'] for x in listed(config)] == ['m-ghost',
                                                         'm-noqueue']
    (shown,) = json.loads(manage(config, 'dead-letters', 'show', 'm-ghost',
                                 '--format', 'json').stdout)
    assert shown['body_encoding'] == 'base64'
    manage(config, 'dead-letters', 'purge', '--yes', '--id', 'm-ghost')
    assert [x['message_id'] for x in listed(config)] == ['m-noqueue']


def test_dead_letters_unreachable_rabbitmq(tmp_path, rabbit, zaqar, names):
    config = write_config(tmp_path, rabbit, zaqar, names)
    port = closed_port()
    text = config.read_text().replace(
        rabbit.url, 'rabbit://guest:guest@127.0.0.1:%d/' % port)
    config.write_text(text)
    result = manage(config, 'dead-letters', 'list', code=1)
    assert 'RabbitMQ at rabbit://guest:***@127.0.0.1:%d/ is unreachable' \
        % port in one_error_line(result)


def signed_client(zaqar, fields):
    return zaqar_v2.Client(zaqar.url, version=2, conf={'auth_opts': {
        'backend': 'signed-url',
        'options': {'signature': fields['signature'],
                    'expires': fields['expires'],
                    'methods': fields['methods'],
                    'paths': fields['paths'],
                    'os_project_id': fields['project']}}})


def test_signed_url_lets_a_guest_use_its_queue_only(tmp_path, rabbit, zaqar,
                                                    names):
    config = write_config(tmp_path, rabbit, zaqar, names)
    queue = 'guestagent_%s' % names.guest
    result = manage(config, 'signed-url', '--tenant', names.tenant_a,
                    '--queue', queue, '--methods', 'GET,POST',
                    '--expires-in', '600', '--format', 'json')
    fields = json.loads(result.stdout)
    assert fields['project'] == names.tenant_a
    assert fields['paths'] == ['/v2/queues/%s/%s' % (queue, path)
                               for path in ('claims', 'messages')]
    assert sorted(fields['methods']) == ['GET', 'POST']
    assert fields['url'] == zaqar.url

    guest = signed_client(zaqar, fields)
    guest.queue(queue, auto_create=False).post(
        [{'ttl': 300, 'body': {'hello': 'bridge'}}])
    got = [m.body for m in guest.queue(queue, auto_create=False).messages(
        echo=True)]
    assert got == [{'hello': 'bridge'}]
    (body,) = bridgeutil.drain(zaqar.client(names.tenant_a).queue(queue), 1)
    assert body == {'hello': 'bridge'}
    with pytest.raises(zaqar_errors.ResourceNotFound):
        list(guest.queue('bridge_replies', auto_create=False).messages())
    with pytest.raises(zaqar_errors.ResourceNotFound):
        guest.queue('other', auto_create=False).post([{'ttl': 60,
                                                       'body': 1}])

    table = manage(config, 'signed-url', '--tenant', names.tenant_b,
                   '--queue', queue).stdout
    assert 'signature' in table and 'signed_url_signature' in table
    assert names.tenant_b in table

    bad = manage(config, 'signed-url', '--tenant', names.tenant_a,
                 '--queue', 'a.b', code=2)
    assert "--queue 'a.b' is not a Zaqar queue name" in one_error_line(bad)


def closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def metrics_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != '/metrics':
                self.send_error(404)
                return
            data = EXPOSITION.encode()
            self.send_response(200)
            self.send_header('Content-Type', 'text/plain; version=0.0.4')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_port
    server.shutdown()
    server.server_close()


def test_check_config_json_with_both_servers_up(tmp_path, rabbit, zaqar,
                                               names):
    config = write_config(tmp_path, rabbit, zaqar, names)
    result = manage(config, 'check-config', '--format', 'json')
    document = json.loads(result.stdout)
    assert document['problems'] == []
    assert [c['status'] for c in document['connections']] == ['ok', 'ok']
    assert [(r['route'], r['direction']) for r in document['routes']] == [
        ('guests', 'to_zaqar'), ('conductor', 'to_amqp')]
    assert result.stderr == ''


def test_status_reads_metrics(tmp_path, rabbit, zaqar, names,
                              metrics_server):
    config = write_config(tmp_path, rabbit, zaqar, names)
    rows = json.loads(manage(config, 'status', '--url',
                             metrics_server + '/metrics', '--format',
                             'json').stdout)
    assert rows == [
        {'route': 'guests', 'received': 12, 'forwarded': 10, 'retried': 0,
         'dead_lettered': 2, 'in_flight': 0, 'workers': '2/2',
         'connections': 'rabbitmq up, zaqar down'},
        {'route': 'conductor', 'received': 0, 'forwarded': 0,
         'retried': 0, 'dead_lettered': 0, 'in_flight': 0,
         'workers': '0/0', 'connections': '-'}]
    table = manage(config, 'status', '--url',
                   metrics_server + '/metrics').stdout
    assert 'guests' in table and 'rabbitmq up, zaqar down' in table

    missing = manage(config, 'status', '--url', metrics_server + '/nope',
                     code=1)
    assert 'answered 404' in one_error_line(missing)
    url = 'http://127.0.0.1:%d/metrics' % closed_port()
    down = manage(config, 'status', '--url', url, code=1)
    assert 'metrics endpoint %s is not reachable' % url in \
        one_error_line(down)
