"""Who may do what in a channel: the client-side permission rules, in one place.

Clients reach channels only through these checks; the server API (trusted,
authenticated by its key) calls the hub directly and is the one way around
them. Each check raises :class:`channels.errors.PermissionDenied` (103) or
returns. Rules, in order:

* subscribe with a valid subscription token for this channel and user:
  allowed (the application's backend decided);
* private channels (name starts with the namespace's
  ``private_channel_prefix``, ``$`` by default): subscribe only with a token;
  publish, presence and history only while subscribed (``allow_X_for_client``
  does not open a private channel to everyone);
* user-limited channels (``dialog:#42,43``, Centrifugo's ``#`` boundary, with
  ``allow_user_limited_channels``): only the listed users, for every action;
* otherwise the namespace's ``allow_X_for_client`` (any authenticated
  connection) or ``allow_X_for_subscriber`` (connections subscribed to the
  channel); anonymous connections additionally need ``allow_X_for_anonymous``.
"""

from __future__ import annotations

from enum import Enum

from channels import errors
from channels.namespaces import NAMESPACE_SEPARATOR, NamespaceOptions, allowed_users


class Action(Enum):
    SUBSCRIBE = "subscribe"
    PUBLISH = "publish"
    PRESENCE = "presence"
    HISTORY = "history"


def is_private(channel: str, opts: NamespaceOptions) -> bool:
    prefix = opts.private_channel_prefix
    if not prefix:
        return False
    _, sep, name = channel.partition(NAMESPACE_SEPARATOR)
    return (name if sep else channel).startswith(prefix)


def _flags(action: Action, opts: NamespaceOptions) -> tuple[bool, bool, bool]:
    """(for_client, for_subscriber, for_anonymous) of one action."""
    if action is Action.SUBSCRIBE:
        return opts.allow_subscribe_for_client, False, opts.allow_subscribe_for_anonymous
    if action is Action.PUBLISH:
        return opts.allow_publish_for_client, opts.allow_publish_for_subscriber, opts.allow_publish_for_anonymous
    if action is Action.PRESENCE:
        return opts.allow_presence_for_client, opts.allow_presence_for_subscriber, opts.allow_presence_for_anonymous
    return opts.allow_history_for_client, opts.allow_history_for_subscriber, opts.allow_history_for_anonymous


def check(action: Action, channel: str, opts: NamespaceOptions, user: str, subscribed: bool) -> None:
    """Raise 103 unless ``user`` (``""`` = anonymous) may do ``action`` without a token."""
    users = allowed_users(channel)
    if users is not None:
        if not opts.allow_user_limited_channels or not user or user not in users:
            raise errors.PermissionDenied()
        if action is Action.SUBSCRIBE:
            return
    private = is_private(channel, opts)
    if private and action is Action.SUBSCRIBE:
        raise errors.PermissionDenied("subscription token required")
    for_client, for_subscriber, for_anonymous = _flags(action, opts)
    if not user and not for_anonymous:
        raise errors.PermissionDenied()
    if for_client and not private:
        return
    if for_subscriber and subscribed:
        return
    raise errors.PermissionDenied()


def check_subscription_token(channel: str, user: str, token_channel: str, token_user: str) -> None:
    """A subscription token is for one channel and one user (its ``sub``)."""
    if token_channel != channel or token_user != user:
        raise errors.PermissionDenied("token does not match channel or user")
