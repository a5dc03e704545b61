"""Connection and subscription JWTs (Centrifugo's claims), verified with PyJWT.

Only algorithms whose key is configured are accepted, so a token signed with
"none" or with an unexpected algorithm is rejected before its claims are read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from channels import errors


class InvalidToken(Exception):
    """Signature, algorithm or claims are wrong: disconnect 3500 / error 103."""


class ExpiredToken(Exception):
    """Valid but expired: error 109 so the client fetches a new one."""


@dataclass(frozen=True, slots=True)
class ConnectClaims:
    user: str
    expire_at: int = 0  # unix seconds, 0 = never
    info: Any = None
    channels: tuple[str, ...] = ()
    subs: dict[str, Any] = field(default_factory=dict)
    meta: Any = None


@dataclass(frozen=True, slots=True)
class SubscribeClaims:
    user: str
    channel: str
    expire_at: int = 0
    info: Any = None


def _read_key(value: str) -> str:
    if not value:
        return ""
    if "-----BEGIN" in value:
        return value
    return Path(value).read_text()


class TokenVerifier:
    """Verifies tokens with the keys given; built once at start-up."""

    def __init__(
        self,
        hmac_secret: str = "",
        rsa_public_key: str = "",
        ecdsa_public_key: str = "",
        audience: str = "",
        issuer: str = "",
    ) -> None:
        self._keys: dict[str, Any] = {}
        if hmac_secret:
            self._keys["HS256"] = hmac_secret
        rsa = _read_key(rsa_public_key)
        if rsa:
            self._keys["RS256"] = rsa
        ec = _read_key(ecdsa_public_key)
        if ec:
            self._keys["ES256"] = ec
        self._audience = audience or None
        self._issuer = issuer or None

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def _decode(self, token: str) -> dict[str, Any]:
        if not self._keys:
            raise InvalidToken("no token keys configured")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise InvalidToken(f"malformed token: {e}") from None
        alg = header.get("alg")
        key = self._keys.get(alg) if isinstance(alg, str) else None
        if key is None:
            raise InvalidToken(f"algorithm {alg!r} not allowed")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken("token expired") from None
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None
        if not isinstance(claims.get("sub"), str):
            raise InvalidToken("sub claim must be a string")
        return claims

    def connect(self, token: str) -> ConnectClaims:
        c = self._decode(token)
        channels = c.get("channels") or []
        subs = c.get("subs") or {}
        if not isinstance(channels, list) or not all(isinstance(x, str) for x in channels):
            raise InvalidToken("channels claim must be a list of strings")
        if not isinstance(subs, dict) or not all(isinstance(v, dict) for v in subs.values()):
            raise InvalidToken("subs claim must map channels to objects")
        return ConnectClaims(
            user=c["sub"],
            expire_at=_expire_at(c),
            info=c.get("info"),
            channels=tuple(channels),
            subs=subs,
            meta=c.get("meta"),
        )

    def subscribe(self, token: str) -> SubscribeClaims:
        c = self._decode(token)
        channel = c.get("channel")
        if not isinstance(channel, str) or not channel:
            raise InvalidToken("channel claim required")
        return SubscribeClaims(
            user=c["sub"],
            channel=channel,
            expire_at=_expire_at(c),
            info=c.get("info"),
        )


def _expire_at(claims: dict[str, Any]) -> int:
    """Centrifugo's ``expire_at`` overrides ``exp`` for when the connection or
    subscription ends (``exp`` still bounds the token itself); 0 = never."""
    value = claims.get("expire_at", claims.get("exp", 0))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidToken("expire_at/exp must be a unix time")
    return int(value)


def make_token(
    secret: str,
    user: str,
    *,
    ttl: int | None = None,
    info: Any = None,
    channel: str = "",
    channels: list[str] | None = None,
    subs: dict[str, Any] | None = None,
    meta: Any = None,
    algorithm: str = "HS256",
    extra: dict[str, Any] | None = None,
) -> str:
    """Create a connection token (or a subscription token with ``channel``).

    ``secret`` is the HS256 secret or, for RS256/ES256, the PEM private key.
    """
    claims: dict[str, Any] = {"sub": user}
    if ttl:
        claims["exp"] = int(time.time()) + ttl
    if info is not None:
        claims["info"] = info
    if channel:
        claims["channel"] = channel
    if channels:
        claims["channels"] = channels
    if subs:
        claims["subs"] = subs
    if meta is not None:
        claims["meta"] = meta
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm=algorithm)


def token_error(e: Exception) -> errors.SquallError:
    if isinstance(e, ExpiredToken):
        return errors.TokenExpired()
    return errors.PermissionDenied("invalid token")
