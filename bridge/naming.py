"""Zaqar queue names from AMQP names.

Zaqar accepts queue names made of ASCII letters, digits, ``_`` and ``-``,
1 to 64 characters long.  AMQP routing keys and oslo.messaging topics are
freer (a Trove topic is ``guestagent.<uuid>``, a server's own topic
``guestagent.<uuid>.<uuid>``), so every name the bridge or the guest
driver sends to Zaqar goes through :func:`queue_name`:

1. characters: letters, digits, ``_`` and ``-`` are kept as they are,
   ``.`` becomes ``_``, any other character (spaces, ``:``, ``/``,
   anything non-ASCII) becomes ``-``;
2. length: a result of at most 64 characters is the queue name; a longer
   one is cut to its first 47 characters, followed by ``-`` and the first
   16 hex digits of the SHA-256 of the whole result of step 1 (ASCII):
   ``guestagent.<uuid>.<uuid>`` (84 characters) becomes
   ``guestagent_<uuid>-<16 hex>`` (64);
3. an empty name (or one that is not a string) is refused with
   :class:`QueueNameError`.

Properties the bridge and the guest driver rely on:

* Deterministic, stdlib only, the same on both sides of the bridge: map
  the WHOLE name once (``<queue_prefix><topic>`` on the guest, the
  rendered template on the bridge); appending to an already shortened name
  gives another queue.
* Names that fit keep the names they always had (before long names were
  shortened they were refused): existing queues keep working.
* Not one-to-one, by design and for every length: two names share a queue
  when they are equal after step 1 (``a.b`` and ``a_b``, ``é`` and
  ``ü``).  The digest is taken after step 1 precisely so that this rule
  does not depend on the length, and so that it is over ASCII only.
  Otherwise two names share a queue only if they have the same 47-character
  prefix and the same 64-bit digest: for k long names with one prefix
  the chance of any collision is about k^2 / 2^65 (1e-8 for a million);
  finding a second name for a given queue takes about 2^64 SHA-256
  computations.
* Idempotent: a mapped name is a valid name and maps to itself, shortened
  or not.
* Tenants stay apart: with ``{tenant}-`` at the start of a template and a
  tenant id of at most :data:`MAX_TENANT_LENGTH` (46) characters, the kept
  prefix still starts with ``<tenant>-``, so two tenants' long names differ
  in the kept part and can never meet, and :class:`QueuePattern` counts a
  ``{tenant}`` match only inside the kept part (Keystone project ids are
  32 characters).
"""

import hashlib
import re

MAX_LENGTH = 64
DIGEST_LENGTH = 16
PREFIX_LENGTH = MAX_LENGTH - 1 - DIGEST_LENGTH
# "<tenant>-" must fit in the kept prefix of a shortened name.
MAX_TENANT_LENGTH = PREFIX_LENGTH - 1
_VALID = re.compile(r'^[A-Za-z0-9_-]{1,%d}$' % MAX_LENGTH)
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
    if len(mapped) <= MAX_LENGTH:
        return mapped
    digest = hashlib.sha256(mapped.encode('ascii')).hexdigest()
    return '%s-%s' % (mapped[:PREFIX_LENGTH], digest[:DIGEST_LENGTH])


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
    is empty.
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
    project ids are hex.  A shortened name (:func:`queue_name`) keeps only
    its first :data:`PREFIX_LENGTH` characters, so a match counts only
    when the (last) tenant and the character after it lie inside them:
    else tenant ``X`` of 47 characters would match the shortened names of
    every tenant whose id starts with ``X``.  With ``{tenant}`` first this
    means tenant ids of at most :data:`MAX_TENANT_LENGTH` characters.
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
        # Parts up to the last {tenant}: the part of a name that says
        # whose it is.
        self._head = (len(parts) - parts[::-1].index('{tenant}')
                      if self.has_tenant else 0)

    def matches(self, name, tenant):
        """True when ``name`` is one of ``tenant``'s queues."""
        if not is_valid(name):
            return False
        regex = [
            '[A-Za-z0-9_]*' if part == '*'
            else re.escape(tenant) if part == '{tenant}'
            else re.escape(part) for part in self._parts]
        match = re.fullmatch('(%s)%s' % (''.join(regex[:self._head]),
                                         ''.join(regex[self._head:])), name)
        return match is not None and (
            not self.has_tenant or match.end(1) < PREFIX_LENGTH)
