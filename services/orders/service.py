"""OrdersService servicer: thin — parse, call domain and store, map errors."""

from __future__ import annotations

from mbt.orders.v1 import orders_pb2_grpc


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    pass
