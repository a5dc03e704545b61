"""Squall's load tester: drives thousands of Centrifugo-protocol clients.

Its own package (not part of the server) so it can target any
Centrifugo-compatible server. Entry points: :mod:`loadtest.cli`.
"""
