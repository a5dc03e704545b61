"""Namespace options of issue 16: allowed_delta_types, allow_tags_filter, force_recovery_mode, auto_cache_recover."""

from __future__ import annotations

import pytest

from channels.namespaces import build_namespaces


def test_options_read_as_centrifugo_names_them() -> None:
    """Centrifugo's spelling is accepted and kept."""
    ns = build_namespaces({}, [{"name": "d", "history_size": 10, "force_recovery": True, "allowed_delta_types": ["fossil"],
                                "allow_tags_filter": True, "force_recovery_mode": "cache", "auto_cache_recover": True}])
    o = ns.lookup("d:x")
    assert (o.allowed_delta_types, o.allow_tags_filter, o.force_recovery_mode, o.auto_cache_recover) == (
        ("fossil",), True, "cache", True)
    assert ns.lookup("x").allowed_delta_types == ()


@pytest.mark.parametrize(
    "raw, why",
    [
        ({"allowed_delta_types": ["brotli"]}, "allowed_delta_types: unknown delta type 'brotli'"),
        ({"allowed_delta_types": "fossil"}, "allowed_delta_types: expected a list of strings"),
        ({"force_recovery_mode": "memory"}, "force_recovery_mode: expected one of"),
        ({"auto_cache_recover": True, "history_size": 5}, "auto_cache_recover: needs force_recovery"),
    ],
)
def test_bad_values_name_the_option(raw: dict, why: str) -> None:
    """A bad value is refused at start-up with the option's name."""
    with pytest.raises(ValueError, match=why):
        build_namespaces({}, [{"name": "d", **raw}])
