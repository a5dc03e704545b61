"""Client ids are random RFC 4122 version-4 UUIDs in their text form, as Centrifugo's are."""

from __future__ import annotations

import re
import uuid

from handlers.client_ids import new_client_id

_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_ids_are_version_4_uuids() -> None:
    """Every id parses as a version-4 UUID of the RFC 4122 variant and prints back the same."""
    for _ in range(2000):
        cid = new_client_id()
        assert _TEXT.match(cid), cid
        u = uuid.UUID(cid)
        assert u.version == 4 and u.variant == uuid.RFC_4122
        assert str(u) == cid


def test_ids_do_not_repeat_and_every_random_digit_varies() -> None:
    """10,000 ids are distinct, and each of the 30 random hex digits takes many values."""
    ids = [new_client_id().replace("-", "") for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    fixed = {12}  # the version digit; the variant digit (16) keeps 2 random bits
    for i in range(32):
        seen = {cid[i] for cid in ids}
        if i in fixed:
            assert seen == {"4"}
        elif i == 16:
            assert seen == set("89ab")
        else:
            assert len(seen) == 16, (i, seen)
