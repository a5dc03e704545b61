"""Connection and subscription tokens: algorithms, claims, expiry and refresh."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from handlers.auth import make_token
from server.app import Squall
from tests.helpers.squall_process import OPEN_NAMESPACE, test_config
from tests.helpers.wsclient import RawClient, connected

SECRET = "test-secret-0123456789-abcdefghij"


def _pem_pair(key: Any) -> tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """RSA and EC key pairs; the RSA public key is given as a file, the EC one as PEM text."""
    d = tmp_path_factory.mktemp("keys")
    rsa_priv, rsa_pub = _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_priv, ec_pub = _pem_pair(ec.generate_private_key(ec.SECP256R1()))
    other_priv, _ = _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    (d / "rsa.pub").write_text(rsa_pub)
    return {
        "rsa_private": rsa_priv,
        "rsa_public_file": str(d / "rsa.pub"),
        "rsa_public": rsa_pub,
        "ec_private": ec_priv,
        "ec_public": ec_pub,
        "other_rsa_private": other_priv,
    }


@pytest.fixture
def squall_config(keys: dict[str, str]) -> dict[str, Any]:
    private_ns = {
        "name": "private",
        "presence": True,
        "allow_subscribe_for_client": True,
        "allow_publish_for_subscriber": True,
        "history_size": 10,
        "history_ttl": 60,
    }
    return test_config(
        allow_anonymous_connect_without_token=False,
        token_hmac_secret_key=SECRET,
        token_rsa_public_key=keys["rsa_public_file"],
        token_ecdsa_public_key=keys["ec_public"],
        client_expired_close_delay=0,
        client_expired_sub_close_delay=0,
        namespaces=[{"name": "chat", **OPEN_NAMESPACE}, private_ns],
    )


async def closes_with(c: RawClient, code: int) -> None:
    got, _ = await c.wait_closed()
    assert got == code


def tok(user: str = "alice", **kw: Any) -> str:
    return make_token(SECRET, user, **kw)


# ------------------------------------------------------------ algorithms
@pytest.mark.gen_test
async def test_hs256_token_connects_as_its_user(ws_url: str, squall_app: Squall) -> None:
    """An HS256 token signed with the configured secret connects as its sub."""
    c = await connected(ws_url, token=tok("alice"))
    assert [s.user for s in squall_app.ctx.hub.clients()] == ["alice"]
    c.close()


@pytest.mark.gen_test
async def test_rs256_token_with_public_key_file(ws_url: str, squall_app: Squall, keys: dict[str, str]) -> None:
    """An RS256 token verifies against the public key read from a file."""
    c = await connected(ws_url, token=make_token(keys["rsa_private"], "bob", algorithm="RS256"))
    assert [s.user for s in squall_app.ctx.hub.clients()] == ["bob"]
    c.close()


@pytest.mark.gen_test
async def test_es256_token_with_public_key_pem(ws_url: str, squall_app: Squall, keys: dict[str, str]) -> None:
    """An ES256 token verifies against the public key given as PEM text."""
    c = await connected(ws_url, token=make_token(keys["ec_private"], "carol", algorithm="ES256"))
    assert [s.user for s in squall_app.ctx.hub.clients()] == ["carol"]
    c.close()


@pytest.mark.gen_test
async def test_wrong_hmac_signature_disconnects_3500(ws_url: str, squall_app: Squall) -> None:
    """A token signed with another secret ends the connection with 3500."""
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": make_token("another-secret-0123456789-abcdef", "alice")}})
    await closes_with(c, 3500)
    assert squall_app.ctx.hub.num_clients == 0


@pytest.mark.gen_test
async def test_rs256_signed_by_another_key_disconnects_3500(ws_url: str, keys: dict[str, str]) -> None:
    """An RS256 token from a key pair we do not trust is refused with 3500."""
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": make_token(keys["other_rsa_private"], "x", algorithm="RS256")}})
    await closes_with(c, 3500)


@pytest.mark.gen_test
async def test_alg_none_is_rejected(ws_url: str) -> None:
    """An unsigned token (alg "none") is refused with 3500."""
    unsigned = jwt.encode({"sub": "admin"}, None, algorithm="none")
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": unsigned}})
    await closes_with(c, 3500)


@pytest.mark.gen_test
async def test_unconfigured_algorithm_is_rejected(ws_url: str) -> None:
    """HS512 signed with the right secret is still refused: only configured algorithms count."""
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": jwt.encode({"sub": "alice"}, SECRET, algorithm="HS512")}})
    await closes_with(c, 3500)


@pytest.mark.gen_test
async def test_hs256_signed_with_rsa_public_key_is_rejected(ws_url: str, keys: dict[str, str]) -> None:
    """Key confusion: an HS256 token keyed with the RSA public key is refused."""
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    body = jwt.utils.base64url_encode(b'{"sub":"admin"}')
    signing_input = header + b"." + body
    sig = hmac.new(keys["rsa_public"].encode(), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + jwt.utils.base64url_encode(sig)).decode()
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": forged}})
    await closes_with(c, 3500)


@pytest.mark.gen_test
async def test_garbage_token_and_missing_token(ws_url: str) -> None:
    """A token that is not a JWT is 3500; no token when anonymous is off is 3501."""
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": "not.a.jwt"}})
    await closes_with(c, 3500)
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {}})
    await closes_with(c, 3501)


@pytest.mark.gen_test
async def test_invalid_token_subscribes_nothing(ws_url: str, squall_app: Squall) -> None:
    """A badly signed token carrying a channels claim subscribes nobody to anything."""
    forged = make_token("wrong-secret-0123456789-abcdefghij", "mallory", channels=["chat:room"])
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": forged}})
    await closes_with(c, 3500)
    hub = squall_app.ctx.hub
    assert hub.num_channels == 0 and hub.num_clients == 0


# ------------------------------------------------------------ claims
@pytest.mark.gen_test
async def test_claims_info_channels_subs_meta(ws_url: str, squall_app: Squall) -> None:
    """info shows in presence, channels and subs subscribe server-side, meta stays on the server."""
    token = tok(
        "alice",
        info={"name": "Alice"},
        channels=["chat:a"],
        subs={"chat:b": {}},
        meta={"plan": "gold"},
    )
    c = await RawClient.open(ws_url)
    reply = await c.call("connect", {"token": token})
    assert set(reply["connect"]["subs"]) == {"chat:a", "chat:b"}
    r = await c.call("presence", {"channel": "chat:a"})
    (entry,) = r["presence"]["presence"].values()
    assert entry["user"] == "alice" and entry["conn_info"] == {"name": "Alice"}
    (session,) = squall_app.ctx.hub.clients()
    assert getattr(session, "meta") == {"plan": "gold"}
    assert "plan" not in str(reply)
    c.close()


@pytest.mark.gen_test
async def test_malformed_claims_are_invalid(ws_url: str) -> None:
    """A channels claim that is not a list of strings makes the token invalid (3500)."""
    c = await RawClient.open(ws_url)
    await c.send({"id": 1, "connect": {"token": tok("alice", extra={"channels": "chat:a"})}})
    await closes_with(c, 3500)


# ------------------------------------------------------------ expiry and refresh
@pytest.mark.gen_test
async def test_expired_token_on_connect_is_109(ws_url: str) -> None:
    """An expired connection token gets error 109 so the SDK fetches a new one; the socket stays."""
    c = await RawClient.open(ws_url)
    r = await c.call("connect", {"token": tok("alice", extra={"exp": int(time.time()) - 10})})
    assert r["error"]["code"] == 109
    r = await c.call("connect", {"token": tok("alice", ttl=60)})
    assert "connect" in r
    c.close()


@pytest.mark.gen_test(timeout=15)
async def test_connection_expires_without_refresh_3005(ws_url: str) -> None:
    """A connection whose token expires and is not refreshed is closed with 3005."""
    c = await RawClient.open(ws_url)
    # ttl=2: exp is whole seconds, so a ttl of 1 can already be past when the server reads it
    r = await c.call("connect", {"token": tok("alice", ttl=2)})
    assert r["connect"]["expires"] is True and 1 <= r["connect"]["ttl"] <= 2
    got, _ = await c.wait_closed(timeout=10)
    assert got == 3005


@pytest.mark.gen_test(timeout=15)
async def test_refresh_keeps_connection_alive(ws_url: str, squall_app: Squall) -> None:
    """A refresh with a new token before expiry moves the deadline; the connection survives."""
    c = await RawClient.open(ws_url)
    await c.call("connect", {"token": tok("alice", ttl=3)})
    r = await c.call("refresh", {"token": tok("alice", ttl=60)})
    assert r["refresh"]["expires"] is True and r["refresh"]["ttl"] > 30
    (session,) = squall_app.ctx.hub.clients()
    assert session.expire_at > time.time() + 30  # type: ignore[attr-defined]
    # past the old expiry the connection still answers
    await asyncio.sleep(3.5)
    r = await c.call("ping", {})
    assert r == {"id": c.next_id, "ping": {}}
    c.close()


@pytest.mark.gen_test
async def test_refresh_for_another_user_disconnects_3500(ws_url: str) -> None:
    """A refresh token for a different user ends the connection with 3500."""
    c = await RawClient.open(ws_url)
    await c.call("connect", {"token": tok("alice", ttl=60)})
    await c.send({"id": 9, "refresh": {"token": tok("mallory", ttl=60)}})
    await closes_with(c, 3500)


@pytest.mark.gen_test
async def test_refresh_with_expired_token_is_109(ws_url: str) -> None:
    """Refreshing with an already expired token is answered 109."""
    c = await RawClient.open(ws_url)
    await c.call("connect", {"token": tok("alice", ttl=60)})
    r = await c.call("refresh", {"token": tok("alice", extra={"exp": int(time.time()) - 5})})
    assert r["error"]["code"] == 109
    c.close()


@pytest.mark.gen_test
async def test_refresh_token_info_replaces_conn_info_in_presence(ws_url: str, squall_app: Squall) -> None:
    """As Centrifugo, a refresh token's info becomes the connection's info: presence, publications, chan_info kept."""
    alice = await connected(ws_url, token=tok("alice", ttl=60, info={"name": "old"}))
    await alice.call("subscribe", {"channel": "chat:rn"})
    chan_token = tok("alice", channel="private:$room", info={"role": "host"})
    assert "subscribe" in await alice.call("subscribe", {"channel": "private:$room", "token": chan_token})
    bob = await connected(ws_url, token=tok("bob"))
    await bob.call("subscribe", {"channel": "chat:rn"})

    def names(reply: dict[str, Any]) -> dict[str, Any]:
        return {i["user"]: i.get("conn_info") for i in reply["presence"]["presence"].values()}

    assert names(await bob.call("presence", {"channel": "chat:rn"}))["alice"] == {"name": "old"}
    r = await alice.call("refresh", {"token": tok("alice", ttl=60, info={"name": "new"})})
    assert r["refresh"]["expires"] is True
    assert names(await bob.call("presence", {"channel": "chat:rn"}))["alice"] == {"name": "new"}
    (entry,) = (await squall_app.ctx.hub.presence("private:$room")).values()
    assert (entry.conn_info, entry.chan_info) == ({"name": "new"}, {"role": "host"})
    await alice.call("publish", {"channel": "chat:rn", "data": "hi"})
    push = await bob.next_push()
    assert push["push"]["pub"]["info"]["conn_info"] == {"name": "new"}
    # a refresh token without info leaves the info as it is
    await alice.call("refresh", {"token": tok("alice", ttl=60)})
    assert names(await bob.call("presence", {"channel": "chat:rn"}))["alice"] == {"name": "new"}
    alice.close()
    bob.close()


# ------------------------------------------------------------ subscription tokens
@pytest.mark.gen_test
async def test_private_channel_needs_subscription_token(ws_url: str, squall_app: Squall) -> None:
    """'$' channels: 103 without a token, subscribed with a valid one."""
    c = await connected(ws_url, token=tok("alice"))
    r = await c.call("subscribe", {"channel": "private:$room"})
    assert r["error"]["code"] == 103
    r = await c.call("subscribe", {"channel": "private:$room", "token": tok("alice", channel="private:$room")})
    assert "subscribe" in r, r
    (session,) = squall_app.ctx.hub.clients()
    assert squall_app.ctx.hub.is_subscribed(session, "private:$room")
    c.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda: tok("alice", channel="private:$other"),  # another channel
        lambda: tok("bob", channel="private:$room"),  # another user
        lambda: make_token("wrong-secret-0123456789-abcdefghij", "alice", channel="private:$room"),
        lambda: jwt.encode({"sub": "alice", "channel": "private:$room"}, None, algorithm="none"),
        lambda: "garbage",
    ],
    ids=["other-channel", "other-user", "bad-signature", "alg-none", "garbage"],
)
@pytest.mark.gen_test
async def test_bad_subscription_token_is_103_and_nothing_subscribed(ws_url: str, squall_app: Squall, make: Any) -> None:
    """A subscription token that does not verify or does not match is 103, with no subscription."""
    c = await connected(ws_url, token=tok("alice"))
    r = await c.call("subscribe", {"channel": "private:$room", "token": make()})
    assert r["error"]["code"] == 103
    assert squall_app.ctx.hub.num_channels == 0
    r = await c.call("publish", {"channel": "private:$room", "data": 1})
    assert r["error"]["code"] == 103
    c.close()


@pytest.mark.gen_test
async def test_expired_subscription_token_is_109(ws_url: str) -> None:
    """An expired subscription token gets 109 so the SDK asks for a new one."""
    c = await connected(ws_url, token=tok("alice"))
    expired = tok("alice", channel="private:$room", extra={"exp": int(time.time()) - 5})
    r = await c.call("subscribe", {"channel": "private:$room", "token": expired})
    assert r["error"]["code"] == 109
    c.close()


@pytest.mark.gen_test(timeout=15)
async def test_subscription_expires_without_sub_refresh_2501(ws_url: str, squall_app: Squall) -> None:
    """A subscription whose token expires unrefreshed is ended with unsubscribe code 2501."""
    c = await connected(ws_url, token=tok("alice"))
    r = await c.call("subscribe", {"channel": "private:$room", "token": tok("alice", channel="private:$room", ttl=2)})
    assert r["subscribe"]["expires"] is True
    push = await c.next_push(timeout=10)
    assert push["push"]["channel"] == "private:$room"
    assert push["push"]["unsubscribe"]["code"] == 2501
    assert squall_app.ctx.hub.num_channels == 0
    c.close()


@pytest.mark.gen_test(timeout=15)
async def test_sub_refresh_keeps_subscription(ws_url: str, squall_app: Squall) -> None:
    """sub_refresh with a fresh token keeps the subscription past the old expiry."""
    c = await connected(ws_url, token=tok("alice"))
    await c.call("subscribe", {"channel": "private:$room", "token": tok("alice", channel="private:$room", ttl=3)})
    r = await c.call("sub_refresh", {"channel": "private:$room", "token": tok("alice", channel="private:$room", ttl=60)})
    assert r["sub_refresh"]["ttl"] > 30
    await asyncio.sleep(3.5)
    r = await c.call("publish", {"channel": "private:$room", "data": "still here"})
    assert r == {"id": c.next_id, "publish": {}}
    push = await c.next_push()
    assert push["push"]["pub"]["data"] == "still here"
    c.close()


def test_key_file_or_pem_text(keys: dict[str, str], tmp_path: Path) -> None:
    """The verifier takes a public key as a file path or as PEM text alike."""
    from handlers.auth import TokenVerifier

    token = make_token(keys["rsa_private"], "dave", algorithm="RS256")
    assert TokenVerifier(rsa_public_key=keys["rsa_public_file"]).connect(token).user == "dave"
    assert TokenVerifier(rsa_public_key=keys["rsa_public"]).connect(token).user == "dave"
