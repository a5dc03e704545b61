"""Handlers layer: transports, the client protocol, and the HTTP endpoints."""
