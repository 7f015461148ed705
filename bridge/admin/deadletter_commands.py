"""``dead-letters list|show|replay|purge``: the operator's side of them."""

import argparse
import sys

from bridge.admin import cli
from bridge.admin import deadletters
from bridge.admin import Failure
from bridge.admin import output
from bridge.admin import replay as replay_mod
from bridge.admin import UsageError

HELP = 'List, show, replay or purge the dead letters.'
DESCRIPTION = '''\
Messages the bridge can never deliver wait in [amqp] dead_letter_queue with
their reason. list and show leave them there; replay puts them back where
the bridge reads them again (to_zaqar: the route's AMQP queue; to_amqp: the
tenant's Zaqar queue) once the cause is fixed, and removes each one only
after that succeeded; purge drops them.'''


def _fail_lines(failures):
    for line in failures:
        sys.stderr.write('%s: %s\n' % (cli.PROG, line))


def _not_found(conf, ident):
    return Failure('no dead letter with message id or index %r in queue %s'
                   % (ident, conf.amqp.dead_letter_queue))


def list_letters(conf, routes):
    args = conf.command
    with deadletters.DeadLetterQueue(conf) as dlq:
        waiting = dlq.count() or 0
        shown = []
        for letter in dlq.walk():
            if args.route in (None, letter.route):
                shown.append(letter)
                if len(shown) >= args.limit:
                    break
    title = 'Dead letters in %s: %d waiting, %d shown' % (
        dlq.name, waiting, len(shown))
    output.show(conf, [letter.row() for letter in shown], title,
                json_value=[letter.summary() for letter in shown])
    return 0


def _print_details(details):
    print('Dead letter %d' % details['index'])
    for key in sorted(details['headers']):
        print('  %s: %s' % (key, details['headers'][key]))
    print('  content-type: %s' % details['content_type'])
    print('  content-encoding: %s' % details['content_encoding'])
    print('Body (%s):' % details['body_encoding'])
    if details['body_encoding'] == 'json':
        print(output.to_json(details['body']))
    else:
        print(details['body'])
    if 'oslo_message' in details:
        print('oslo.message, decoded:')
        print(output.to_json(details['oslo_message']))


def show(conf, routes):
    ident = conf.command.ident
    with deadletters.DeadLetterQueue(conf) as dlq:
        found = [letter.details() for letter in
                 deadletters.select(dlq.walk(), ident=ident)]
    if not found:
        raise _not_found(conf, ident)
    if conf.command.format == 'json':
        print(output.to_json(found))
    else:
        for i, details in enumerate(found):
            if i:
                print()
            _print_details(details)
    return 0


def _outcome_row(letter, result, target=None):
    row = {'index': letter.index, 'route': letter.route,
           'direction': letter.direction, 'message_id': letter.message_id}
    if target is not None:
        row['to'] = target
    row['result'] = result
    return row


def _remove(dlq, letter, after=''):
    try:
        letter.message.ack()
    except dlq.errors as exc:
        raise Failure('%sdead letter %d could not be removed: %s'
                      % (after, letter.index, exc))


def replay(conf, routes):
    args = conf.command
    rows, failures = [], []
    with deadletters.DeadLetterQueue(conf) as dlq:
        letters = deadletters.select(dlq.walk(), args.route, args.ident)
        if args.ident is not None and not letters:
            raise _not_found(conf, args.ident)
        replayer = replay_mod.Replayer(conf, routes, dlq.connection)
        for letter in letters:
            target = '-'
            try:
                target = replayer.target(letter)
                if args.dry_run:
                    result = 'would be replayed'
                else:
                    replayer.replay(letter)
                    _remove(dlq, letter, 're-injected (replaying it again '
                            'makes a duplicate), but ')
                    result = 'replayed'
            except Failure as exc:
                result = 'not replayed: %s' % exc
                failures.append('dead letter %d (message %s of route %s) '
                                'cannot be replayed: %s' % (
                                    letter.index, letter.message_id or '?',
                                    letter.route or '?', exc))
            rows.append(_outcome_row(letter, result, target))
    title = ('Dry run, nothing changed: replay from %s' if args.dry_run
             else 'Replay from %s') % dlq.name
    output.show(conf, rows, title)
    _fail_lines(failures)
    return 1 if failures else 0


def purge(conf, routes):
    args = conf.command
    if not args.yes:
        raise UsageError('dead-letters purge deletes dead letters for good: '
                         'add --yes (dead-letters list shows them first)')
    rows = []
    with deadletters.DeadLetterQueue(conf) as dlq:
        for letter in deadletters.select(dlq.walk(), args.route,
                                         args.ident):
            _remove(dlq, letter)
            rows.append(_outcome_row(letter, 'purged'))
        if args.ident is not None and not rows:
            raise _not_found(conf, args.ident)
    output.show(conf, rows, 'Purged from %s:' % dlq.name)
    return 0


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError('%r is not a positive integer'
                                         % text)
    return value


def add_parser(subparsers):
    parser = cli.add_parser(subparsers, 'dead-letters', help=HELP,
                            description=DESCRIPTION)
    actions = parser.add_subparsers(dest='dead_letters_action',
                                    title='Actions', metavar='ACTION')
    actions.required = True

    def action(name, func, help_text):
        sub = cli.add_parser(actions, name, help=help_text,
                             description=help_text)
        sub.set_defaults(func=func)
        cli.add_format_option(sub)
        return sub

    sub = action('list', list_letters, 'List the dead letters waiting, '
                 'oldest first, without removing any.')
    sub.add_argument('--route', help='Only those of this route.')
    sub.add_argument('--limit', type=_positive, default=100,
                     help='Show at most this many (default: 100).')

    sub = action('show', show, 'Headers and body of one dead letter.')
    sub.add_argument('ident', metavar='ID',
                     help='Its message id (x-bridge-message-id) or its '
                          'index in the list.')

    sub = action('replay', replay, 'Send dead letters through the bridge '
                 'again, once the cause is fixed; each is removed only '
                 'after it was re-injected.')
    sub.add_argument('--route', help='Only those of this route.')
    sub.add_argument('--id', dest='ident',
                     help='Only this one (message id or index).')
    sub.add_argument('--dry-run', action='store_true',
                     help='Say what would be replayed, change nothing.')

    sub = action('purge', purge, 'Delete dead letters for good.')
    sub.add_argument('--route', help='Only those of this route.')
    sub.add_argument('--id', dest='ident',
                     help='Only this one (message id or index).')
    sub.add_argument('--yes', action='store_true',
                     help='Really delete them.')
    return parser
