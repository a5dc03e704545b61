#!/bin/sh
# Regenerates handlers/proto/client_pb2.py and its type stub client_pb2.pyi
# (both committed; mypy reads the stub) from client.proto.
# Needs protoc (Debian: apt-get install protobuf-compiler). The generated code
# runs on the `protobuf` package from PyPI (setup.cfg install_requires).
#
# The proto path is the repository root, so the file registers in protobuf's
# default descriptor pool as "handlers/proto/client.proto": centrifuge-python
# registers its own "client.proto", and one process (the SDK tests) loads both.
#
# Run from anywhere: sh handlers/proto/generate.sh
set -eu
cd "$(dirname "$0")/../.."
protoc --proto_path=. --python_out=. --pyi_out=. handlers/proto/client.proto
echo "generated handlers/proto/client_pb2.py with $(protoc --version)"
