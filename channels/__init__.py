"""Channels layer: hub, namespaces, subscriptions and the backend interfaces.

Nothing in this package imports from ``handlers`` or ``server``: deliveries go
back up only through the :class:`channels.transport.Subscriber` protocol.
"""
