"""AccountsService servicer: thin — wire in, use case, wire out (errors map in the interceptor)."""

from __future__ import annotations

import time
from datetime import date

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc, privacy_pb2, privacy_pb2_grpc
from services.accounts import wire
from services.accounts.usecases.eod import EndOfDay
from services.accounts.usecases.expiration import Expiration
from services.accounts.usecases.graduation import GraduationGate
from services.accounts.usecases.holds import Holds, SentChoices
from services.accounts.usecases.privacy import Privacy
from services.accounts.usecases.reads import AccountReads
from services.accounts.usecases.retention import HistoryRetention
from services.accounts.usecases.users import Users
from services.common.errors import invalid_argument
from services.common.ids import requested_id
from services.common.rpc import context as rpc_context
from services.common.rpc.context import require_user_id
from services.common.wire.conv import from_date, from_timestamp, money_str, parse_decimal, parse_enum
from services.common.wire.retention import user_cutoffs_from_proto
from services.common.wire.trading import FILL_PREFERENCES


class AccountsServicer(accounts_pb2_grpc.AccountsServiceServicer):
    def __init__(
        self,
        reads: AccountReads,
        holds: Holds,
        users: Users,
        expiration: Expiration,
        graduation: GraduationGate,
        eod: EndOfDay,
        retention: HistoryRetention,
    ) -> None:
        self.reads = reads
        self.holds = holds
        self.users = users
        self.expiration = expiration
        self.graduation = graduation
        self.eod = eod
        self.retention = retention

    async def GetGraduation(self, request, context):
        graduation = await self.graduation.get(require_user_id())
        return accounts_pb2.GetGraduationResponse(graduation=wire.graduation_to_proto(graduation))

    async def OverrideGraduation(self, request, context):
        graduation = await self.graduation.override(request.user_id, request.reason, request.operator)
        return accounts_pb2.OverrideGraduationResponse(graduation=wire.graduation_to_proto(graduation))

    async def GetAccount(self, request, context):
        return accounts_pb2.GetAccountResponse(
            account=wire.account_to_proto(await self.reads.account(require_user_id()))
        )

    async def ListPositions(self, request, context):
        records = await self.reads.positions(require_user_id(), request.include_closed)
        return accounts_pb2.ListPositionsResponse(positions=[wire.position_to_proto(r) for r in records])

    async def GetPosition(self, request, context):
        symbol = request.symbol.strip().upper()
        if not symbol:
            raise invalid_argument("symbol is required", "symbol")
        record = await self.reads.position(require_user_id(), symbol)
        return accounts_pb2.GetPositionResponse(position=wire.position_to_proto(record))

    async def GetPnl(self, request, context):
        report = await self.reads.pnl(
            require_user_id(), from_timestamp(request.from_time), from_timestamp(request.to_time)
        )
        return wire.pnl_to_proto(report)

    async def GetSettings(self, request, context):
        settings = await self.users.settings(require_user_id())
        return accounts_pb2.GetSettingsResponse(settings=wire.settings_to_proto(settings))

    async def UpdateSettings(self, request, context):
        settings = await self.users.change_settings(
            require_user_id(),
            parse_enum(wire.PROFILES, request.investor_profile, "investor_profile", required=False),
            parse_enum(wire.ACCOUNT_TYPES, request.account_type, "account_type", required=False),
            parse_enum(FILL_PREFERENCES, request.fill_preference, "fill_preference", required=False),
            parse_decimal(request.starting_cash, "starting_cash", required=False),
        )
        return accounts_pb2.UpdateSettingsResponse(settings=wire.settings_to_proto(settings))

    async def GetPortfolioHistory(self, request, context):
        report = await self.eod.portfolio_history(require_user_id(), request.period, request.timeframe)
        return wire.portfolio_history_to_proto(report)

    async def MarkEndOfDay(self, request, context):
        return wire.mark_result_to_proto(await self.eod.mark(from_date(request.session_date, "session_date")))

    async def CreditDividends(self, request, context):
        result = await self.eod.credit_dividends(from_date(request.pay_date, "pay_date"))
        return wire.dividends_result_to_proto(result)

    async def AccrueMarginInterest(self, request, context):
        result = await self.eod.accrue_interest(from_date(request.session_date, "session_date"))
        return wire.interest_result_to_proto(result)

    async def GetUser(self, request, context):
        return accounts_pb2.GetUserResponse(user=wire.user_to_proto(await self.users.get(request.user_id)))

    async def ListAccountHoldings(self, request, context):
        holdings, after = await self.users.holdings(request.after_account_id, request.page_size)
        return accounts_pb2.ListAccountHoldingsResponse(
            accounts=[wire.holding_to_proto(holding) for holding in holdings], next_after_account_id=after
        )

    async def UpdateUser(self, request, context):
        user = await self.users.update(
            request.user_id,
            parse_enum(wire.TIERS, request.tier, "tier", required=False),
            parse_enum(wire.PROFILES, request.investor_profile, "investor_profile", required=False),
            parse_enum(wire.ACCOUNT_TYPES, request.account_type, "account_type", required=False),
        )
        return accounts_pb2.UpdateUserResponse(user=wire.user_to_proto(user))

    async def ReserveBuyingPower(self, request, context):
        sent = SentChoices(wire.intent_of(request), wire.leg_intents_of(request), wire.preference_of(request))
        held = await self.holds.hold(
            request.user_id,
            request.order_id,
            request.order_version,
            wire.hold_terms(request),
            sent,
            request.parent_order_id.strip(),
        )
        return accounts_pb2.ReserveBuyingPowerResponse(
            reservation=wire.reservation_to_proto(
                held.account_id,
                request.order_id,
                held.hold,
                held.position_intent,
                held.leg_intents,
                held.fill_preference,
            ),
            buying_power=money_str(held.buying_power),
        )

    async def ReleaseBuyingPower(self, request, context):
        released = await self.holds.release(request.user_id, request.order_id, request.order_version)
        return accounts_pb2.ReleaseBuyingPowerResponse(released=money_str(released))

    async def ExerciseOption(self, request, context):
        settled = await self.expiration.exercise(require_user_id(), request.symbol, parse_decimal(request.qty, "qty"))
        return accounts_pb2.ExerciseOptionResponse(
            settlement=wire.settlement_to_proto(settled.account_id, settled.effect)
        )

    async def InstructDoNotExercise(self, request, context):
        state = await self.expiration.instruct(require_user_id(), request.symbol, give=True)
        return accounts_pb2.InstructDoNotExerciseResponse(instruction=wire.instruction_to_proto(state))

    async def WithdrawDoNotExercise(self, request, context):
        state = await self.expiration.instruct(require_user_id(), request.symbol, give=False)
        return accounts_pb2.WithdrawDoNotExerciseResponse(instruction=wire.instruction_to_proto(state))

    async def ListUncarriedOptions(self, request, context):
        return wire.uncarried_to_proto(await self.expiration.uncarried(_session_date(request)))

    async def GetCarriedForward(self, request, context):
        if not request.user_id:
            raise invalid_argument("user_id is required", "user_id")
        account_id, carried = await self.retention.carried_forward(request.user_id)
        return wire.carried_forward_to_proto(account_id, carried)

    async def PurgeExpiredHistory(self, request, context):
        purged = await self.retention.purge(user_cutoffs_from_proto(request.users), request.batch_size)
        return accounts_pb2.PurgeExpiredHistoryResponse(
            ledger_entries_folded=purged.ledger_entries,
            closed_positions_purged=purged.closed_positions,
            snapshots_purged=purged.snapshots,
            batches=purged.batches,
        )

    async def ExpireOptions(self, request, context):
        report = await self.expiration.expire(_session_date(request))
        return accounts_pb2.ExpireOptionsResponse(
            settlements=[wire.settlement_to_proto(s.account_id, s.effect) for s in report.settled],
            accounts=report.accounts,
            shortfalls=report.shortfalls,
            unpriced=report.unpriced,
        )


def _session_date(request) -> date:
    session_date = from_date(request.session_date, "session_date")
    if session_date is None:
        raise invalid_argument("session_date is required", "session_date")
    return session_date


class PrivacyServicer(privacy_pb2_grpc.PrivacyServiceServicer):
    """GDPR export and erasure: the caller's own (an ops token reads exports of the user it
    names, audited like every ops read); the job's internal calls."""

    def __init__(self, privacy: Privacy) -> None:
        self.privacy = privacy

    async def CreateDataExport(self, request, context):
        export = await self.privacy.create_export(require_user_id())
        return privacy_pb2.CreateDataExportResponse(export=wire.data_export_to_proto(export))

    async def GetDataExport(self, request, context):
        export = await self.privacy.export(require_user_id(), _export_id(request.export_id))
        return privacy_pb2.GetDataExportResponse(export=wire.data_export_to_proto(export))

    async def GetDataExportArchive(self, request, context):
        export, archive = await self.privacy.archive(require_user_id(), _export_id(request.export_id))
        return privacy_pb2.GetDataExportArchiveResponse(
            filename=f"mbt-export-{export.export_id}.zip",
            content_type="application/zip",
            archive=archive,
            archive_sha256=export.archive_sha256,
        )

    async def RequestErasure(self, request, context):
        erasure = await self.privacy.request_erasure(
            require_user_id(), elevated=rpc_context.identity().is_elevated(time.time())
        )
        return privacy_pb2.RequestErasureResponse(erasure=wire.erasure_to_proto(erasure))

    async def CancelErasure(self, request, context):
        erasure = await self.privacy.cancel_erasure(require_user_id())
        return privacy_pb2.CancelErasureResponse(erasure=wire.erasure_to_proto(erasure))

    async def GetErasure(self, request, context):
        erasure = await self.privacy.erasure(require_user_id())
        return privacy_pb2.GetErasureResponse(erasure=wire.erasure_to_proto(erasure))

    async def CompleteDataExport(self, request, context):
        export = await self.privacy.complete_export(_export_id(request.export_id), request.archive, request.error)
        return privacy_pb2.CompleteDataExportResponse(export=wire.data_export_to_proto(export))

    async def ListDueErasures(self, request, context):
        due, cooling = await self.privacy.pending_erasures()
        return privacy_pb2.ListDueErasuresResponse(user_ids=due, cooling_user_ids=cooling)


def _export_id(raw: str) -> str:
    return requested_id(raw, "exp", "export_id", "export")
