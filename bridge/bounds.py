"""Bounds on the fields a guest sets in what it sends the control plane.

A field the control plane's oslo.messaging takes on trust must not be able
to crash it or to reach another tenant's messages:

* nesting: Python's JSON decoder gives up near 1000 levels (the receiving
  oslo.messaging then drops the message with a RecursionError), so a
  route takes at most ``max_depth`` levels;
* ``_timeout`` (the caller's call-monitor timeout, in seconds): the
  receiving RPC server sleeps ``_timeout / 2`` between heartbeats, and a
  huge value makes that sleep raise OverflowError; it must be a finite
  number, not negative, and is lowered to the route's
  ``max_call_timeout``;
* ``_unique_id``: the receiving RPC server drops a message whose id it saw
  recently, so a tenant reusing another tenant's id would get that
  tenant's message dropped; the id is replaced by a hash of tenant and id,
  the same for every redelivery of one tenant's message.
"""

import hashlib
import json
import math

TIMEOUT_KEY = '_timeout'
UNIQUE_ID_KEY = '_unique_id'


class BoundsError(ValueError):
    """A guest field out of bounds; the text names the field."""


def depth(value):
    """How deeply JSON arrays and objects nest in ``value`` (iteratively:
    a value too deep for the interpreter's stack is measured too)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_depth(value, limit):
    found = depth(value)
    if found > limit:
        raise BoundsError('JSON nested %d levels deep, more than max_depth '
                          '= %d' % (found, limit))


def timeout(value, limit):
    """``_timeout`` within bounds: None, or a number from 0 to ``limit``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoundsError('_timeout must be a number of seconds, not %s'
                          % json.dumps(value)[:40])
    if not math.isfinite(value) or value < 0:
        raise BoundsError('_timeout must be a finite number of seconds, '
                          'not negative (got %r)' % value)
    return min(value, limit)


def unique_id(tenant, value):
    """The tenant's own ``_unique_id``: 32 hex digits, like oslo's."""
    if not isinstance(value, str):
        raise BoundsError('_unique_id must be a string, not %s'
                          % json.dumps(value)[:40])
    key = json.dumps([tenant, value]).encode('utf-8')
    return hashlib.sha256(b'amqp-zaqar-bridge _unique_id\0' + key
                          ).hexdigest()[:32]


def bounded(message, tenant, max_call_timeout):
    """A copy of a guest's message with ``_timeout`` and ``_unique_id``
    bounded; raises BoundsError."""
    out = dict(message)
    if TIMEOUT_KEY in out:
        out[TIMEOUT_KEY] = timeout(out[TIMEOUT_KEY], max_call_timeout)
    if UNIQUE_ID_KEY in out:
        out[UNIQUE_ID_KEY] = unique_id(tenant, out[UNIQUE_ID_KEY])
    return out
