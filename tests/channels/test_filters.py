"""Tags filters: Centrifugo's validation errors and comparison semantics."""

from __future__ import annotations

import pytest

from channels.filters import FilterError, parse


@pytest.mark.parametrize(
    "raw, tags, expected",
    [
        ({"key": "t", "cmp": "eq", "val": "a"}, {"t": "a"}, True),
        ({"key": "t", "cmp": "eq", "val": "a"}, {}, False),
        ({"key": "t", "cmp": "neq", "val": "a"}, {}, True),
        ({"key": "t", "cmp": "in", "vals": ["a", "b"]}, {"t": "b"}, True),
        ({"key": "t", "cmp": "nin", "vals": ["a", "b"]}, {"t": "c"}, True),
        ({"key": "t", "cmp": "ex"}, {"t": ""}, True),
        ({"key": "t", "cmp": "nex"}, {"t": ""}, False),
        ({"key": "t", "cmp": "sw", "val": "ab"}, {"t": "abc"}, True),
        ({"key": "t", "cmp": "ew", "val": "bc"}, {"t": "abc"}, True),
        ({"key": "t", "cmp": "ct", "val": "b"}, {"t": "abc"}, True),
        ({"key": "p", "cmp": "gt", "val": "100.5"}, {"p": "100.50001"}, True),
        ({"key": "p", "cmp": "gte", "val": "10"}, {"p": "10.0"}, True),
        ({"key": "p", "cmp": "lt", "val": "10"}, {"p": "9"}, True),
        ({"key": "p", "cmp": "lt", "val": "10"}, {"p": "abc"}, False),
        ({"key": "p", "cmp": "lte", "val": "10"}, {}, False),
        ({"op": "not", "nodes": [{"key": "t", "cmp": "eq", "val": "a"}]}, {"t": "a"}, False),
        ({"op": "and", "nodes": [{"key": "t", "cmp": "ex"}, {"key": "u", "cmp": "nex"}]}, {"t": "1"}, True),
        ({"op": "or", "nodes": [{"key": "t", "cmp": "eq", "val": "x"}, {"key": "u", "cmp": "ex"}]}, {"t": "1"}, False),
    ],
)
def test_match(raw: dict, tags: dict, expected: bool) -> None:
    """Each comparison and logical operator matches as Centrifugo's internal/filter."""
    assert parse(raw).match(tags) is expected


@pytest.mark.parametrize(
    "raw, why",
    [
        ({"key": "t"}, "must have cmp"),
        ({"key": "t", "cmp": "eq"}, "requires val"),
        ({"key": "t", "cmp": "in", "vals": []}, "non-empty vals"),
        ({"key": "t", "cmp": "ex", "val": "x"}, "must not use"),
        ({"cmp": "eq", "val": "x"}, "requires key"),
        ({"key": "t", "cmp": "like", "val": "x"}, "unknown comparison"),
        ({"op": "xor", "nodes": [{"key": "t", "cmp": "ex"}]}, "invalid op"),
        ({"op": "not", "nodes": []}, "exactly one child"),
        ({"op": "and"}, "at least one child"),
        ({"key": 1, "cmp": "ex"}, "must be a string"),
        ("x", "must be an object"),
        ({"op": "or", "nodes": [{"key": "t", "cmp": "ex"}] * 100}, "too large"),
    ],
)
def test_invalid_filters_are_refused(raw: object, why: str) -> None:
    """A filter Centrifugo refuses raises FilterError saying why."""
    with pytest.raises(FilterError, match=why):
        parse(raw)


def test_equal_filters_are_one_key() -> None:
    """Equal filters hash equal: the fan-out evaluates each distinct filter once."""
    a = parse({"op": "and", "nodes": [{"key": "t", "cmp": "in", "vals": ["a"]}]})
    b = parse({"op": "and", "nodes": [{"key": "t", "cmp": "in", "vals": ["a"]}]})
    assert a == b and hash(a) == hash(b)
