"""Why a command to a channel the client could not join names the outage, not 103.

A subscribe refused because a backend was down (100, e.g. "redis pub/sub not
connected") leaves the client unsubscribed. In a namespace where publishing
(or presence, or history) needs a subscription, that command would then be
refused with 103 "permission denied": true, but not why. The session
remembers the outage's message per channel until a subscribe or unsubscribe
of it goes through; while the broker or the history store is still down and
the command would be allowed to a subscriber, the client gets that 100
instead. A command forbidden even to subscribers stays 103. (Centrifugo
answers 103 here; Squall's deviation is in docs/PROTOCOL.md.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels import errors
from channels.namespaces import NamespaceOptions
from handlers.permissions import Action, check

if TYPE_CHECKING:
    from handlers.context import Context
    from handlers.session import ClientSession


class SubscribeOutages:
    """Per session: channel -> the message of the outage its last subscribe failed with."""

    __slots__ = ("_causes", "_limit")

    def __init__(self, limit: int) -> None:
        self._causes: dict[str, str] = {}
        self._limit = max(1, limit)  # a client cannot make it grow past its channel limit

    def remember(self, channel: str, message: str) -> None:
        self._causes.pop(channel, None)
        self._causes[channel] = message
        while len(self._causes) > self._limit:
            del self._causes[next(iter(self._causes))]  # the oldest

    def forget(self, channel: str) -> None:
        self._causes.pop(channel, None)

    def cause(self, channel: str) -> str | None:
        return self._causes.get(channel)


def remember(s: ClientSession, channel: str, e: errors.BackendUnavailable) -> None:
    """The subscribe command to ``channel`` failed because a backend is down."""
    if s.sub_outages is None:  # made on the first outage only: most sessions never see one
        s.sub_outages = SubscribeOutages(s.ctx.options.client_channel_limit)
    s.sub_outages.remember(channel, e.message)


def forget(s: ClientSession, channel: str) -> None:
    if s.sub_outages is not None:
        s.sub_outages.forget(channel)


def backends_down(ctx: Context) -> bool:
    """Whether what a subscribe needs (the broker, the history store) is unreachable now."""
    return not ctx.hub.broker.healthy() or not ctx.history_healthy()


def outage_instead(s: ClientSession, action: Action, channel: str, opts: NamespaceOptions) -> errors.BackendUnavailable | None:
    """The 100 to answer instead of a 103 for ``action``: only when the client is
    refused for not being subscribed, its subscribe failed in an outage, and the
    outage goes on."""
    cause = s.sub_outages.cause(channel) if s.sub_outages is not None else None
    if cause is None or action is Action.SUBSCRIBE or channel in s.subs or not backends_down(s.ctx):
        return None
    try:
        check(action, channel, opts, s.user, True)
    except errors.PermissionDenied:
        return None  # forbidden to subscribers too: the outage is not why
    return errors.BackendUnavailable(cause)
