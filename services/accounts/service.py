"""AccountsService servicer: thin — parse, call the use cases, answer."""

from __future__ import annotations

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from services.accounts import wire
from services.accounts.usecases import Accounts
from services.common.rpc.context import require_user_id
from services.common.wire.conv import from_timestamp, money_str
from services.common.errors import invalid_argument


class AccountsServicer(accounts_pb2_grpc.AccountsServiceServicer):
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def GetAccount(self, request, context):
        return accounts_pb2.GetAccountResponse(account=await self.accounts.get_account(require_user_id()))

    async def ListPositions(self, request, context):
        positions = await self.accounts.list_positions(require_user_id(), request.include_closed)
        return accounts_pb2.ListPositionsResponse(positions=positions)

    async def GetPosition(self, request, context):
        symbol = request.symbol.strip().upper()
        if not symbol:
            raise invalid_argument("symbol is required", "symbol")
        return accounts_pb2.GetPositionResponse(position=await self.accounts.get_position(require_user_id(), symbol))

    async def GetPnl(self, request, context):
        return await self.accounts.get_pnl(require_user_id(), from_timestamp(request.from_time),
                                           from_timestamp(request.to_time))

    async def GetUser(self, request, context):
        return accounts_pb2.GetUserResponse(user=await self.accounts.get_user(request.user_id))

    async def UpdateUser(self, request, context):
        return accounts_pb2.UpdateUserResponse(user=await self.accounts.update_user(request))

    async def ReserveBuyingPower(self, request, context):
        reservation, power = await self.accounts.reserve(request)
        return accounts_pb2.ReserveBuyingPowerResponse(reservation=wire.reservation_to_proto(reservation),
                                                       buying_power=money_str(power))

    async def ReleaseBuyingPower(self, request, context):
        if not request.order_id:
            raise invalid_argument("order_id is required", "order_id")
        released = await self.accounts.release(request.order_id, request.order_version, request.user_id)
        return accounts_pb2.ReleaseBuyingPowerResponse(released=money_str(released))
