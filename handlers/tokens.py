"""Token checks as the client protocol answers them, written once.

Connection tokens (connect, refresh): expired is error 109, so the SDK gets a
new token and tries again; anything else wrong ends the connection with 3500,
because a client holding a bad token cannot fix it by retrying. Subscription
tokens (subscribe, sub_refresh): expired is 109, invalid is 103, and the token
must be for this channel and this user.
"""

from __future__ import annotations

import logging

from channels import errors
from handlers.auth import ConnectClaims, ExpiredToken, InvalidToken, SubscribeClaims, TokenVerifier, token_error
from handlers.permissions import check_subscription_token

log = logging.getLogger("squall.client")


def connection_claims(verifier: TokenVerifier, token: str, client: str) -> ConnectClaims:
    try:
        return verifier.connect(token)
    except ExpiredToken:
        raise errors.TokenExpired() from None
    except InvalidToken as e:
        log.info("client=%s invalid connection token: %s", client, e)
        raise errors.Disconnect(errors.INVALID_TOKEN) from None


def subscription_claims(verifier: TokenVerifier, token: str, channel: str, user: str, client: str) -> SubscribeClaims:
    try:
        claims = verifier.subscribe(token)
    except (InvalidToken, ExpiredToken) as e:
        log.info("client=%s bad subscription token for %s: %s", client, channel, e)
        raise token_error(e) from None
    check_subscription_token(channel, user, claims.channel, claims.user)
    return claims
