"""Zaqar queue names from AMQP names.

Zaqar accepts queue names made of ASCII letters, digits, ``_`` and ``-``,
1 to 64 characters long.  AMQP routing keys and oslo.messaging topics are
freer (a Trove topic is ``guestagent.<uuid>``), so every name the bridge
or the guest driver sends to Zaqar goes through :func:`queue_name`:

* letters, digits, ``_`` and ``-`` are kept as they are;
* ``.`` becomes ``_`` (``guestagent.1234`` -> ``guestagent_1234``);
* any other character becomes ``-``;
* a result that is empty or longer than 64 characters is refused with
  :class:`QueueNameError`; the name is never cut, so two long topics can
  never silently share a queue.

The mapping is deterministic and the same on both sides of the bridge.
Note that it is not one-to-one: ``a.b`` and ``a_b`` land in the same queue.
"""

import re

MAX_LENGTH = 64
_VALID = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
_OTHER = re.compile(r'[^A-Za-z0-9_.-]')


class QueueNameError(ValueError):
    """A name that cannot be turned into a Zaqar queue name."""


def queue_name(name):
    """Map an AMQP topic / routing key / rendered template to a queue name."""
    if not isinstance(name, str):
        raise QueueNameError('queue name must be a string, got %r' % (name,))
    mapped = _OTHER.sub('-', name).replace('.', '_')
    if not mapped:
        raise QueueNameError('empty queue name')
    if len(mapped) > MAX_LENGTH:
        raise QueueNameError(
            'queue name %r is %d characters long once mapped; Zaqar allows '
            'at most %d' % (mapped, len(mapped), MAX_LENGTH))
    return mapped


def is_valid(name):
    """True when ``name`` is already a valid Zaqar queue name."""
    return isinstance(name, str) and bool(_VALID.match(name))


def fanout_queue_name(topic):
    """The Zaqar queue that carries fanout casts for ``topic``.

    It mirrors the AMQP fanout exchange oslo.messaging uses,
    ``<topic>_fanout``.  Readers of a fanout queue list it (pub/sub) rather
    than claim it, so every listener sees every message.
    """
    return queue_name('%s_fanout' % topic)


def render(template, **fields):
    """Render a ``{field}`` template and map the result to a queue name.

    Raises :class:`QueueNameError` when a field is missing or the result
    can't be a queue name.
    """
    try:
        rendered = template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise QueueNameError('cannot render queue template %r: %s'
                             % (template, exc))
    return queue_name(rendered)


class QueuePattern:
    """A set of queue names: ``*`` for ``[A-Za-z0-9_]*``, ``{tenant}``.

    ``*`` never matches ``-``, so with ``{tenant}`` set off by ``-`` (as in
    ``{tenant}-reply_*``) no name of one tenant matches another's pattern
    unless a tenant id itself holds the other's plus ``-``; Keystone
    project ids are hex.
    """

    _PART = re.compile(r'(\*|\{tenant\})')
    _LITERAL = re.compile(r'^[A-Za-z0-9_-]*$')

    def __init__(self, pattern):
        parts = self._PART.split(pattern or '')
        for literal in parts[::2]:
            if not self._LITERAL.match(literal):
                raise QueueNameError(
                    'pattern %r: only letters, digits, "_", "-", "*" and '
                    '{tenant} are allowed' % (pattern,))
        if not pattern:
            raise QueueNameError('empty queue name pattern')
        self.pattern = pattern
        self._parts = parts
        self.has_tenant = '{tenant}' in parts

    def matches(self, name, tenant):
        """True when ``name`` is one of ``tenant``'s queues."""
        if not is_valid(name):
            return False
        regex = ''.join(
            '[A-Za-z0-9_]*' if part == '*'
            else re.escape(tenant) if part == '{tenant}'
            else re.escape(part) for part in self._parts)
        return re.fullmatch(regex, name) is not None
