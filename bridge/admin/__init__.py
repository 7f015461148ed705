"""What ``amqp-zaqar-bridge-manage`` does beyond checking the config.

One module per task (dead letters, signed URLs, status), each giving the
command line its sub-commands.  A command that cannot do its job raises
:class:`Failure` (exit code 1) or :class:`UsageError` (exit code 2) with
one line naming what is wrong; the command line prints it, never a
traceback.
"""


class Failure(Exception):
    """The command could not do its job (a server, a missing thing...)."""

    exit_code = 1


class UsageError(Failure):
    """The command line or the configuration asks for something wrong."""

    exit_code = 2
