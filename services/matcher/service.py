"""MatcherService servicer: thin — parse, call domain, map errors."""

from __future__ import annotations

from mbt.matcher.v1 import matcher_pb2_grpc


class MatcherServicer(matcher_pb2_grpc.MatcherServiceServicer):
    pass
