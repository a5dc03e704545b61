"""Hypothesis strategies for hostile client input (shared by the fuzz tests)."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from hypothesis import strategies as st

from handlers.protocol import METHODS

CHANNELS = [
    "chat:a",
    "live:b",
    "chat:$secret",
    "chat:#1,2",
    "nope:x",
    "",
    "chat:" + "x" * 300,
    "chat:é",
    "chat:a b",
    "a",
    ":",
    "chat:",
]
KEYS = [
    "channel", "data", "token", "limit", "since", "offset", "epoch", "recover", "reverse",
    "subs", "method", "flag", "positioned", "join_leave", "recoverable", "name", "version",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(CHANNELS),
)


def values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=max_leaves,
    )


msgpack_extras = st.one_of(
    st.binary(max_size=20),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
    st.dictionaries(st.binary(max_size=5), scalars, max_size=3),  # binary map keys
)


def params(extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    v = values() if extra is None else st.one_of(values(), extra)
    return st.dictionaries(
        st.sampled_from(KEYS),
        st.one_of(st.sampled_from(CHANNELS), v, st.fixed_dictionaries({"offset": scalars, "epoch": scalars})),
        max_size=5,
    )


IDS = st.one_of(
    st.integers(min_value=0, max_value=2**32 + 2),
    st.sampled_from([-1, 1.5, "1", None, True]),
)


def _command(cid: Any, methods: list[str], body: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": cid}
    for m in methods:
        out[m] = body
    return out


def _plausible(cid: int, method: str, channel: str, rest: dict[str, Any]) -> dict[str, Any]:
    return {"id": cid, method: {"channel": channel, **rest}}


def plausible(extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A well-formed command with hostile values: it reaches its handler."""
    v = values() if extra is None else st.one_of(values(), values(), values(), extra)
    rest = st.dictionaries(
        st.sampled_from(KEYS[1:]),
        st.one_of(v, st.fixed_dictionaries({"offset": scalars, "epoch": scalars})),
        max_size=4,
    )
    cid = st.integers(min_value=1, max_value=2**32 - 1)
    any_method = st.builds(
        _plausible, cid, st.sampled_from([m for m in METHODS if m != "connect"]), st.sampled_from(CHANNELS), rest
    )
    # publications into channels the observer listens to: hostile data must fan out safely
    data = v if extra is None else st.one_of(values(), extra)
    publish = st.builds(
        _plausible, cid, st.just("publish"), st.sampled_from(["chat:a", "live:b"]), st.fixed_dictionaries({"data": data})
    )
    return st.one_of(any_method, any_method, publish)


def wild(extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Anything command-shaped: wrong ids, several or unknown methods, params that are not maps."""
    methods = st.lists(st.sampled_from([*METHODS, "bogus"]), max_size=2, unique=True)
    body = st.one_of(params(extra), scalars)
    return st.builds(_command, IDS, methods, body)


def command(extra: st.SearchStrategy[Any] | None = None, wild_share: int = 8) -> st.SearchStrategy[dict[str, Any]]:
    """Plausible commands (deep coverage of the handlers) and one wild one in ``wild_share`` (0: none)."""
    p = plausible(extra)
    if not wild_share:
        return p
    return st.one_of(*[p] * (wild_share - 1), wild(extra))


def json_frame(cmds: list[dict[str, Any]]) -> bytes:
    # the stdlib encoder writes integers of any size, unlike orjson
    return "\n".join(json.dumps(c, ensure_ascii=False) for c in cmds).encode("utf-8", "surrogatepass")


def msgpack_frame(cmds: list[dict[str, Any]]) -> bytes | None:
    try:
        return b"".join(msgpack.packb(c, use_bin_type=True) for c in cmds)
    except (OverflowError, ValueError, TypeError):
        return None


def deep(n: int, fmt: str) -> bytes:
    """A publish whose data nests ``n`` arrays deep."""
    if fmt == "json":
        return b'{"id":1,"publish":{"channel":"chat:a","data":' + b"[" * n + b"]" * n + b"}}"
    head = msgpack.packb({"id": 1, "publish": {"channel": "chat:a", "data": None}})
    assert head.endswith(b"\xc0")
    return head[:-1] + b"\x91" * n + b"\xc0"  # n one-element arrays around nil
