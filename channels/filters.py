"""Publication tags filters (Centrifugo v6.4's ``tf`` subscribe field), pure.

A filter is a tree of nodes, as in client.proto's ``FilterNode``::

    {"key": "ticker", "cmp": "eq", "val": "BTC"}                 # a leaf
    {"op": "and", "nodes": [{...}, {...}]}                      # and / or
    {"op": "not", "nodes": [{...}]}                             # exactly one child

Leaf comparisons against the publication's ``tags`` (string -> string):
``eq neq in nin ex nex sw ew ct`` and the numeric ``lt lte gt gte`` (both
sides parsed as decimals; an unparsable side does not match). Validation and
matching follow Centrifugo's internal/filter; an invalid filter is refused at
subscribe time.

:class:`Filter` is frozen and hashable: subscribers with equal filters share
one evaluation per publication (:mod:`channels.delta_fanout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

LOGICAL = ("and", "or", "not")
NEEDS_VAL = ("eq", "neq", "sw", "ew", "ct", "gt", "gte", "lt", "lte")
NEEDS_VALS = ("in", "nin")
NO_VALUE = ("ex", "nex")
MAX_NODES = 64  # nodes in one filter: bounded work per publication
MAX_DEPTH = 8


class FilterError(ValueError):
    """A filter Centrifugo would refuse."""


@dataclass(frozen=True, slots=True)
class Filter:
    op: str = ""
    key: str = ""
    cmp: str = ""
    val: str = ""
    vals: tuple[str, ...] = ()
    nodes: tuple["Filter", ...] = ()

    def match(self, tags: Mapping[str, str] | None) -> bool:
        tags = tags or {}
        op = self.op
        if op == "and":
            return all(n.match(tags) for n in self.nodes)
        if op == "or":
            return any(n.match(tags) for n in self.nodes)
        if op == "not":
            return not self.nodes[0].match(tags)
        present = self.key in tags
        value = tags.get(self.key, "")
        cmp = self.cmp
        if cmp == "eq":
            return present and value == self.val
        if cmp == "neq":
            return not present or value != self.val
        if cmp == "in":
            return value in self.vals
        if cmp == "nin":
            return value not in self.vals
        if cmp == "ex":
            return present
        if cmp == "nex":
            return not present
        if cmp == "sw":
            return present and value.startswith(self.val)
        if cmp == "ew":
            return present and value.endswith(self.val)
        if cmp == "ct":
            return present and self.val in value
        if not present:
            return False
        a, b = _decimal(value), _decimal(self.val)
        if a is None or b is None:
            return False
        if cmp == "gt":
            return a > b
        if cmp == "gte":
            return a >= b
        if cmp == "lt":
            return a < b
        return a <= b  # lte


def _decimal(s: str) -> Decimal | None:
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def parse(raw: Any) -> Filter:
    """A validated Filter from the JSON form; FilterError saying what is wrong."""
    count = [0]
    return _parse(raw, 0, count)


def _str(raw: Mapping[str, Any], name: str) -> str:
    v = raw.get(name) or ""
    if not isinstance(v, str):
        raise FilterError(f"{name} must be a string")
    return v


def _parse(raw: Any, depth: int, count: list[int]) -> Filter:
    if not isinstance(raw, dict):
        raise FilterError("filter node must be an object")
    count[0] += 1
    if count[0] > MAX_NODES or depth > MAX_DEPTH:
        raise FilterError("filter too large")
    op, key, cmp, val = _str(raw, "op"), _str(raw, "key"), _str(raw, "cmp"), _str(raw, "val")
    vals_raw = raw.get("vals") or []
    nodes_raw = raw.get("nodes") or []
    if not isinstance(vals_raw, list) or not all(isinstance(v, str) for v in vals_raw):
        raise FilterError("vals must be a list of strings")
    if not isinstance(nodes_raw, list):
        raise FilterError("nodes must be a list")
    if op == "":
        if not cmp:
            raise FilterError("leaf node must have cmp set")
        if cmp in NEEDS_VAL:
            if not val:
                raise FilterError(f"{cmp} comparison requires val")
            if vals_raw:
                raise FilterError(f"{cmp} comparison must not use vals")
        elif cmp in NEEDS_VALS:
            if not vals_raw:
                raise FilterError(f"{cmp} comparison requires non-empty vals")
            if val:
                raise FilterError(f"{cmp} comparison must not use val")
        elif cmp in NO_VALUE:
            if val or vals_raw:
                raise FilterError(f"{cmp} comparison must not use val or vals")
        else:
            raise FilterError(f"unknown comparison operator: {cmp}")
        if not key and cmp not in NO_VALUE:
            raise FilterError("leaf node requires key")
        return Filter(key=key, cmp=cmp, val=val, vals=tuple(vals_raw))
    if op not in LOGICAL:
        raise FilterError(f"invalid op: {op}")
    if op == "not" and len(nodes_raw) != 1:
        raise FilterError("not node must have exactly one child")
    if not nodes_raw:
        raise FilterError(f"{op} node must have at least one child")
    return Filter(op=op, nodes=tuple(_parse(n, depth + 1, count) for n in nodes_raw))
