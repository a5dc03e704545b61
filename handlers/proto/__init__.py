"""Squall's protobuf schema of the client protocol (client.proto) and its generated module (generate.sh)."""
