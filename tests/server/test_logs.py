"""Logs: JSON lines that parse, one line per connection event, and never a token."""

from __future__ import annotations

import io
import json
import logging

import pytest

from handlers.auth import make_token
from server.logs import REDACTED, JsonFormatter, TextFormatter, redact
from tests.helpers.squall_process import test_config
from tests.helpers.wsclient import RawClient, connected

SECRET = "log-test-secret-" + "x" * 20


def test_redact_replaces_jwts_and_keeps_other_text():
    """A JWT inside any text is replaced; ordinary dotted words are left alone."""
    tok = make_token(SECRET, "alice")
    assert redact(f"GET /connection/websocket?token={tok} 1.2.3.4") == f"GET /connection/websocket?token={REDACTED} 1.2.3.4"
    assert redact("client=abc.def user=x.y.z") == "client=abc.def user=x.y.z"


def test_formatters_drop_secret_extras_and_redact():
    """JSON drops extras named like secrets; both formats redact JWTs in the message."""
    tok = make_token(SECRET, "alice")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("squall.test.logs")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        handler.setFormatter(JsonFormatter())
        logger.warning("bad %s", tok, extra={"token": tok, "api_key": "k", "client": "c1", "user": "alice"})
        handler.setFormatter(TextFormatter("%(message)s"))
        logger.warning("bad %s", tok)
    finally:
        logger.removeHandler(handler)
    json_line, text_line = stream.getvalue().splitlines()
    obj = json.loads(json_line)
    assert obj["msg"] == f"bad {REDACTED}" and obj["client"] == "c1" and obj["user"] == "alice"
    assert "token" not in obj and "api_key" not in obj
    assert text_line == f"bad {REDACTED}"


@pytest.mark.gen_test(timeout=60)
async def test_json_logs_parse_and_carry_no_token(squall_factory):
    """A real server at debug level: every line is JSON, connects are logged with client and user, no JWT leaks."""
    sp = squall_factory(
        test_config(token_hmac_secret_key=SECRET, allow_anonymous_connect_without_token=False),
        args=["--log-format", "json", "--log-level", "debug"],
    )
    good = make_token(SECRET, "alice")
    forged = make_token("some-other-secret-of-enough-length", "mallory")
    # The token also rides in the URL, where the debug access log would print it.
    c = await connected(sp.ws_url + "?token=" + good, token=good)
    r = await c.call("subscribe", {"channel": "chat:logs"})
    assert "subscribe" in r
    bad = await RawClient.open(sp.ws_url)
    await bad.send({"id": 1, "connect": {"token": forged}})
    code, _ = await bad.wait_closed()
    assert code == 3500
    c.close()
    assert sp.stop() == 0
    text = sp.logs()
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses
    assert good not in text and forged not in text
    for part in good.split(".")[1:] + forged.split(".")[1:]:  # neither payload nor signature
        assert part not in text
    connects = [r for r in records if r["msg"].startswith("connect client=")]
    assert any("user=alice" in r["msg"] for r in connects)
    assert any(r["msg"].startswith("disconnect client=") and "code=3500" in r["msg"] for r in records)
    assert {r["level"] for r in records} >= {"info", "debug"}
    # wherever the URL's token was printed (the debug access log), it is redacted
    for r in records:
        for rest in r["msg"].split("token=")[1:]:
            assert rest.startswith(REDACTED), r


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_repeated_warning_is_one_line_then_summaries_at_growing_intervals():
    """A warning retried every second logs once, then '(repeated N times ...)' after 10 s, 20 s, ...; others pass."""
    from server.logs import RepeatFilter

    clock = FakeClock()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    handler.addFilter(RepeatFilter(first_window=10, max_window=300, clock=clock))
    logger = logging.getLogger("squall.test.repeat")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        for i in range(60):  # one retry a second for a minute, each with a different delay
            logger.warning("pub/sub %s: connect failed (refused); retry in %.2fs", "redis://127.0.0.1:6390/0", 0.1 + i / 100)
            logger.info("info line %d", i)  # below warning: never held back
            clock.now += 1
        logger.warning("another warning")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    warnings = [line for line in lines if line.startswith("WARNING pub/sub")]
    assert len(warnings) == 3  # at 0 s, 10 s and 30 s (the next would be at 70 s)
    assert "repeated" not in warnings[0]
    assert "(repeated 9 times in the last 10s)" in warnings[1]
    assert "(repeated 19 times in the last 20s)" in warnings[2]
    assert sum(1 for line in lines if line.startswith("INFO info line")) == 60
    assert lines[-1] == "WARNING another warning"
