"""JSON text in and out of the data path: ``json.dumps``/``json.loads``
with their default settings, without their set-up on every call.

``json.dumps(obj)`` builds a new C encoder (and a closure) on each call:
more than half its time for a message of a few hundred bytes, and the
bridge serialises every message it forwards.  ``json.loads`` checks its
argument before it calls the same decoder.  :func:`dumps` and
:func:`loads` use a C encoder and a decoder built once: the same text out,
the same values in, the same exceptions (``ValueError`` subclasses for
bad text, ``TypeError`` for what JSON cannot hold).

For data that can hold no cycle (parsed JSON, and dicts and lists built
around it): :func:`dumps` does not look for cycles, so a cyclic value
ends in ``RecursionError`` where ``json.dumps`` raises ``ValueError``.
"""

import json
from json import encoder as json_encoder


def _not_serializable(value):
    raise TypeError('Object of type %s is not JSON serializable'
                    % type(value).__name__)


_DECODER = json.JSONDecoder()
_SCAN = _DECODER.scan_once
# What JSON calls whitespace (json.decoder.WHITESPACE).
_WHITESPACE = ' \t\n\r'
_C_ENCODER = json_encoder.c_make_encoder
if _C_ENCODER is not None:
    # The arguments JSONEncoder.iterencode gives it for json.dumps(obj):
    # no cycle markers (None), no indent, ': ' and ', ', unsorted keys,
    # no skipped keys, NaN and Infinity allowed.
    _ENCODE = _C_ENCODER(None, _not_serializable,
                         json_encoder.encode_basestring_ascii, None,
                         ': ', ', ', False, False, True)

    def dumps(value):
        """``json.dumps(value)`` (ASCII text)."""
        return ''.join(_ENCODE(value, 0))
else:  # pragma: no cover (a Python without the _json accelerator)
    dumps = json.dumps


def loads(text):
    """``json.loads(text)`` for a ``str``."""
    # As json.loads and JSONDecoder.decode, with str.lstrip for their
    # whitespace regex.
    if text.startswith('\ufeff'):
        raise json.JSONDecodeError('Unexpected UTF-8 BOM (decode using '
                                   'utf-8-sig)', text, 0)
    size = len(text)
    try:
        value, end = _SCAN(text, size - len(text.lstrip(_WHITESPACE)))
    except StopIteration as exc:
        raise json.JSONDecodeError('Expecting value', text, exc.value)
    if end != size:
        end = size - len(text[end:].lstrip(_WHITESPACE))
        if end != size:
            raise json.JSONDecodeError('Extra data', text, end)
    return value
