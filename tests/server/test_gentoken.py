"""`python run.py gentoken`: connection and subscription tokens, HS256/RS256/ES256."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from handlers.auth import TokenVerifier

ROOT = Path(__file__).resolve().parents[2]
SECRET = "gentoken-secret-0123456789-abcdefg"


def gentoken(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "gentoken", *args],
        cwd=str(ROOT), capture_output=True, text=True, timeout=30, env=env,
    )


def write_keys(tmp: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[Path, str]:
    priv = tmp / "private.pem"
    priv.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return priv, public


def test_hs256_connection_token_with_claims() -> None:
    """A connection token carries sub, exp, info and channels and verifies with the secret."""
    p = gentoken("--user", "alice", "--secret", SECRET, "--ttl", "3600",
                 "--info", '{"name":"Alice"}', "--channels", "chat:a,chat:b")
    assert p.returncode == 0, p.stderr
    claims = TokenVerifier(hmac_secret=SECRET).connect(p.stdout.strip())
    assert claims.user == "alice" and claims.info == {"name": "Alice"}
    assert claims.channels == ("chat:a", "chat:b") and claims.expire_at > 0


def test_subscription_token() -> None:
    """--channel makes a subscription token for that channel."""
    p = gentoken("--user", "alice", "--secret", SECRET, "--channel", "private:$room", "--ttl", "60")
    assert p.returncode == 0, p.stderr
    sc = TokenVerifier(hmac_secret=SECRET).subscribe(p.stdout.strip())
    assert sc.channel == "private:$room" and sc.user == "alice"


def test_secret_from_config_setting() -> None:
    """Without --secret the configured token_hmac_secret_key signs."""
    p = gentoken("--user", "bob", "--set", f"token_hmac_secret_key={SECRET}")
    assert p.returncode == 0, p.stderr
    assert jwt.decode(p.stdout.strip(), SECRET, algorithms=["HS256"])["sub"] == "bob"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_asymmetric_tokens_with_private_key(tmp_path: Path, alg: str) -> None:
    """--algorithm RS256/ES256 with --private-key signs tokens the matching public key verifies."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "RS256" else ec.generate_private_key(ec.SECP256R1())
    priv, public = write_keys(tmp_path, key)
    p = gentoken("--user", "carol", "--algorithm", alg, "--private-key", str(priv), "--channel", "chat:x")
    assert p.returncode == 0, p.stderr
    token = p.stdout.strip()
    assert jwt.get_unverified_header(token)["alg"] == alg
    v = TokenVerifier(rsa_public_key=public) if alg == "RS256" else TokenVerifier(ecdsa_public_key=public)
    assert v.subscribe(token).channel == "chat:x"


def test_meta_and_subs_claims() -> None:
    """--meta and --subs add Centrifugo's meta and subs claims."""
    p = gentoken("--user", "dave", "--secret", SECRET, "--meta", '{"plan":"gold"}', "--subs", "chat:a,chat:b")
    assert p.returncode == 0, p.stderr
    claims = TokenVerifier(hmac_secret=SECRET).connect(p.stdout.strip())
    assert claims.meta == {"plan": "gold"} and set(claims.subs) == {"chat:a", "chat:b"}


@pytest.mark.parametrize(
    "args,key",
    [
        (["--user", "x"], "token_hmac_secret_key"),
        (["--user", "x", "--algorithm", "RS256"], "--private-key"),
        (["--user", "x", "--secret", SECRET, "--info", "{not json"], "--info"),
    ],
)
def test_missing_key_or_bad_input_exits_2(args: list[str], key: str) -> None:
    """A missing signing key or malformed JSON exits 2 naming what is wrong."""
    p = gentoken(*args)
    assert p.returncode == 2
    assert key in p.stderr
    assert json.dumps(p.stdout) == '""'
