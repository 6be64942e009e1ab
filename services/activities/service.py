"""ActivitiesService servicer: thin — parse, call domain and store, map errors."""

from __future__ import annotations

from mbt.activities.v1 import activities_pb2_grpc


class ActivitiesServicer(activities_pb2_grpc.ActivitiesServiceServicer):
    pass
