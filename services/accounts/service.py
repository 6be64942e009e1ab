"""AccountsService servicer: thin — parse, call domain and store, map errors."""

from __future__ import annotations

from mbt.accounts.v1 import accounts_pb2_grpc


class AccountsServicer(accounts_pb2_grpc.AccountsServiceServicer):
    pass
