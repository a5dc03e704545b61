"""Fossil delta: our encoder against centrifuge-js's decoder (the reference), and our decoder."""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from channels import delta_fossil
from channels.delta_fossil import DeltaError, apply, checksum, create

JS = Path(__file__).resolve().parents[1] / "interop" / "js"


def _doc(seed: int, n: int = 60) -> dict[str, object]:
    rnd = random.Random(seed)
    return {f"k{i}": {"v": rnd.randint(0, 10**6), "s": "x" * rnd.randint(0, 40), "u": "é€😀"[i % 3]} for i in range(n)}


def _pairs() -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = [
        (b"", b""),
        (b"", b"hello"),
        (b"short", b"shorter!"),
        (b"a" * 100, b""),
        (b"a" * 100, b"a" * 100),
        (b"0123456789abcdef" * 8, b"0123456789abcdef" * 8 + b"tail"),
        (b"0123456789abcdef" * 8, b"head" + b"0123456789abcdef" * 8),
    ]
    rnd = random.Random(7)
    for seed in range(12):
        doc = _doc(seed)
        src = orjson.dumps(doc)
        for key in rnd.sample(sorted(doc), 3):
            doc[key] = {"v": rnd.randint(0, 10**6), "changed": True}
        pairs.append((src, orjson.dumps(doc)))
    for _ in range(6):
        a = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 900)))
        b = bytearray(a)
        for _ in range(rnd.randint(0, 20)):
            pos = rnd.randint(0, len(b))
            b[pos:pos + rnd.randint(0, 30)] = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 30)))
        pairs.append((a, bytes(b)))
    return pairs


def test_known_vector_and_checksum() -> None:
    """A hand-checked delta: length, one insert, checksum in Fossil's base-64 digits."""
    assert create(b"", b"abc") == b"3\n3:abc" + _b64int(checksum(b"abc")) + b";"
    assert checksum(b"abcd") == int.from_bytes(b"abcd", "big")
    assert checksum(b"abcde") == (int.from_bytes(b"abcd", "big") + int.from_bytes(b"e\0\0\0", "big")) & 0xFFFFFFFF


def _b64int(v: int) -> bytes:
    out = bytearray()
    delta_fossil._put_int(out, v)
    return bytes(out)


def test_roundtrip_and_small_deltas() -> None:
    """apply(create(a, b)) == b for every pair; a 1% change of a JSON object is a small delta."""
    for a, b in _pairs():
        assert apply(a, create(a, b)) == b
    doc = _doc(1, 200)
    src = orjson.dumps(doc)
    doc["k5"] = {"v": 1}
    dst = orjson.dumps(doc)
    assert len(create(src, dst)) < len(dst) / 10


def test_decoder_refuses_bad_deltas() -> None:
    """A truncated delta, a wrong checksum or a copy past the source raise DeltaError."""
    src, dst = _pairs()[8]
    d = create(src, dst)
    with pytest.raises(DeltaError):
        apply(src, d[:-3])
    with pytest.raises(DeltaError):
        apply(src, d[:-2] + (b"0" if d[-2:-1] != b"0" else b"1") + b";")
    with pytest.raises(DeltaError):
        apply(b"", b"5\n5@0,0;")


def test_centrifuge_js_decoder_agrees() -> None:
    """centrifuge-js's own applyDelta (under Node) decodes every delta we make to the exact target."""
    if shutil.which("node") is None or not (JS / "node_modules" / "centrifuge").is_dir():
        pytest.skip("node or the centrifuge npm package missing (see tests/interop/test_centrifuge_js.py)")
    pairs = _pairs()
    vectors = [[base64.b64encode(a).decode(), base64.b64encode(create(a, b)).decode()] for a, b in pairs]
    r = subprocess.run(
        ["node", str(Path(__file__).with_name("fossil_apply.mjs")), str(JS)],
        input=json.dumps(vectors), capture_output=True, text=True, timeout=60, cwd=JS,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got == [base64.b64encode(b).decode() for _, b in pairs]
