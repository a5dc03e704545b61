"""Fossil delta (the format of the Fossil SCM's delta.c), pure and I/O-free.

Centrifugo's ``delta: "fossil"`` subscriptions get publications as deltas
against the previous one; centrifuge-js (``fossil.ts``), centrifuge-python and
the Go SDK decode this format. No maintained PyPI package implements it (the
two on PyPI are C wrappers last released in 2017/2018), so it is written here
from the format's description.

A delta is text: ``<target length>\\n``, then commands, each a base-64
integer (digits ``0-9A-Za-z_~`` in this order, most significant first)
followed by ``@<offset>,`` (copy that many bytes of the source from
``offset``), or ``:`` and that many literal bytes, and finally
``<checksum>;``. The checksum is the sum of the target's big-endian 32-bit
words (the tail zero-padded), modulo 2**32.

:func:`create` finds copies with the format's rolling hash over 16-byte
blocks of the source; :func:`apply` is the decoder (used by the tests and by
anyone checking a delta).
"""

from __future__ import annotations

NHASH = 16
_DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_VALUE = {c: i for i, c in enumerate(_DIGITS)}
_MAX_CANDIDATES = 250  # blocks tried per hash bucket, as delta.c


class DeltaError(ValueError):
    """A delta that does not apply to the source it was given."""


def _put_int(out: bytearray, v: int) -> None:
    if v == 0:
        out += b"0"
        return
    digits = bytearray()
    while v > 0:
        digits.append(_DIGITS[v & 0x3F])
        v >>= 6
    digits.reverse()
    out += digits


def _digit_count(v: int) -> int:
    n, x = 1, 64
    while v >= x:
        n += 1
        x <<= 6
    return n


def checksum(data: bytes) -> int:
    """Sum of big-endian 32-bit words, the tail padded with zeros, mod 2**32."""
    pad = (-len(data)) % 4
    if pad:
        data = data + b"\0" * pad
    return sum(int.from_bytes(data[i:i + 4], "big") for i in range(0, len(data), 4)) & 0xFFFFFFFF


def _hash(block: bytes) -> tuple[int, int]:
    a = b = 0
    for i, c in enumerate(block):
        a += c
        b += (NHASH - i) * c
    return a & 0xFFFF, b & 0xFFFF


def _forward(src: bytes, i: int, out: bytes, j: int) -> int:
    """Length of the common run of src[i:] and out[j:]."""
    n = min(len(src) - i, len(out) - j)
    lo = 0
    step = 64
    while lo + step <= n and src[i + lo:i + lo + step] == out[j + lo:j + lo + step]:
        lo += step
    while lo < n and src[i + lo] == out[j + lo]:
        lo += 1
    return lo


def create(src: bytes, out: bytes) -> bytes:
    """A delta that turns ``src`` into ``out``."""
    delta = bytearray()
    len_out = len(out)
    _put_int(delta, len_out)
    delta += b"\n"
    len_src = len(src)
    if len_src <= NHASH:
        _put_int(delta, len_out)
        delta += b":"
        delta += out
        _put_int(delta, checksum(out))
        delta += b";"
        return bytes(delta)
    n_hash = len_src // NHASH
    collide = [-1] * n_hash
    landmark = [-1] * n_hash
    for i in range(0, len_src - NHASH, NHASH):
        a, b = _hash(src[i:i + NHASH])
        hv = (a | (b << 16)) % n_hash
        blk = i // NHASH
        collide[blk] = landmark[hv]
        landmark[hv] = blk
    base = 0
    while base + NHASH < len_out:
        best_ofst = best_lit = best_cnt = 0
        a, b = _hash(out[base:base + NHASH])
        i = 0
        while True:
            hv = (a | (b << 16)) % n_hash
            blk = landmark[hv]
            limit = _MAX_CANDIDATES
            while blk >= 0 and limit > 0:
                limit -= 1
                i_src = blk * NHASH
                j = _forward(src, i_src, out, base + i)
                if j:
                    k = 0  # extend backwards, never before base
                    while k < i_src and k < i and src[i_src - k - 1] == out[base + i - k - 1]:
                        k += 1
                    cnt = j + k
                    ofst = i_src - k
                    lit = i - k
                    size = _digit_count(lit) + _digit_count(cnt) + _digit_count(ofst) + 3
                    if cnt >= size and cnt > best_cnt:
                        best_cnt, best_ofst, best_lit = cnt, ofst, lit
                blk = collide[blk]
            if best_cnt > 0:
                if best_lit > 0:
                    _put_int(delta, best_lit)
                    delta += b":"
                    delta += out[base:base + best_lit]
                    base += best_lit
                _put_int(delta, best_cnt)
                delta += b"@"
                _put_int(delta, best_ofst)
                delta += b","
                base += best_cnt
                break
            if base + i + NHASH >= len_out:
                _put_int(delta, len_out - base)
                delta += b":"
                delta += out[base:]
                base = len_out
                break
            # roll the hash one byte forward
            old, new = out[base + i], out[base + i + NHASH]
            a = (a - old + new) & 0xFFFF
            b = (b - NHASH * old + a) & 0xFFFF
            i += 1
    if base < len_out:
        _put_int(delta, len_out - base)
        delta += b":"
        delta += out[base:]
    _put_int(delta, checksum(out))
    delta += b";"
    return bytes(delta)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def number(self) -> int:
        v = 0
        start = self.pos
        data = self.data
        while self.pos < len(data) and data[self.pos] in _VALUE:
            v = (v << 6) + _VALUE[data[self.pos]]
            self.pos += 1
        if self.pos == start:
            raise DeltaError("number expected")
        return v

    def char(self) -> int:
        if self.pos >= len(self.data):
            raise DeltaError("unexpected end of delta")
        c = self.data[self.pos]
        self.pos += 1
        return c


def apply(src: bytes, delta: bytes) -> bytes:
    """The target a delta made from ``src``; DeltaError when it does not fit."""
    r = _Reader(delta)
    limit = r.number()
    if r.char() != ord("\n"):
        raise DeltaError("size integer not terminated by newline")
    out = bytearray()
    while r.pos < len(delta):
        cnt = r.number()
        op = r.char()
        if op == ord("@"):
            ofst = r.number()
            if r.char() != ord(","):
                raise DeltaError("copy command not terminated by ','")
            if ofst + cnt > len(src):
                raise DeltaError("copy extends past end of input")
            out += src[ofst:ofst + cnt]
        elif op == ord(":"):
            if r.pos + cnt > len(delta):
                raise DeltaError("insert command gives an incomplete literal")
            out += delta[r.pos:r.pos + cnt]
            r.pos += cnt
        elif op == ord(";"):
            if cnt != checksum(bytes(out)):
                raise DeltaError("bad checksum")
            if len(out) != limit:
                raise DeltaError("generated size does not match predicted size")
            return bytes(out)
        else:
            raise DeltaError("unknown delta operator")
        if len(out) > limit:
            raise DeltaError("delta output exceeds predicted size")
    raise DeltaError("unterminated delta")
