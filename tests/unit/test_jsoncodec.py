"""bridge/jsoncodec.py gives what json.dumps/json.loads give: text,
values, and errors (type, message, position)."""

import json

from hypothesis import given
from hypothesis import strategies as st
import pytest

from bridge import jsoncodec

TEXTS = [
    '{"a": 1}', '  {"a": [1, 2.5, "x\\u00e9"]}\n', '[]', '"s"', '1', 'NaN',
    '-Infinity', '{"a": 1e999}', '12345678901234567890123456789',
    ' \t{"x": "\\ud800"} \r\n', '{"a": 1}  \n',
    # errors
    '', '   ', '{"a": 1} x', '{"a": ', '\ufeff{}', '{"a":1}{}', 'tru',
    '  [1,]  ', '{"a": "\x00"}', '{"a" 1}', '[' * 100000,
]


def outcome(fn, *args):
    try:
        return 'ok', fn(*args)
    except (ValueError, TypeError, RecursionError) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize('text', TEXTS)
def test_loads_as_json_loads(text):
    expected = outcome(json.loads, text)
    got = outcome(jsoncodec.loads, text)
    if expected[0] == 'ok' and expected[1] != expected[1]:   # NaN
        assert got[0] == 'ok' and got[1] != got[1]
    else:
        assert got == expected


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) |
    st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@given(values)
def test_dumps_as_json_dumps_and_back(value):
    text = jsoncodec.dumps(value)
    assert text == json.dumps(value)
    # Read back, it is the same value (compared as text: NaN != NaN).
    assert json.dumps(jsoncodec.loads(text)) == text


def test_dumps_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match='Object of type object is not '
                                        'JSON serializable'):
        jsoncodec.dumps({'a': object()})
