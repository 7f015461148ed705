"""Sub-command parsers whose errors are one line, as the rest of the CLI.

argparse prints its usage block before an error; the manage command
prints only ``<command>: error: <what is wrong>`` and exits with 2.
"""

PROG = 'amqp-zaqar-bridge-manage'


def add_parser(subparsers, name, **kwargs):
    parser = subparsers.add_parser(name, **kwargs)

    def error(message):
        # parser.prog is "<argv[0]> <command> [<action>]"
        command = parser.prog.split(' ', 1)[1:]
        parser.exit(2, '%s: error: %s\n'
                    % (' '.join([PROG] + command), message))
    parser.error = error
    return parser


def add_format_option(parser):
    parser.add_argument('--format', choices=['table', 'json'],
                        default='table',
                        help='Output format (default: table).')
