"""build(settings): wires the accounts service."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from mbt.marketdata.v1 import marketdata_pb2_grpc
from services.accounts.clients import MarketDataClient
from services.accounts.events import Handlers, publish
from services.accounts.service import AccountsServicer, PrivacyServicer
from services.accounts.store import OUTBOX, SERVICE, USER_TABLES
from services.accounts.usecases.deps import Deps
from services.accounts.usecases.eod import EndOfDay
from services.accounts.usecases.expiration import Expiration
from services.accounts.usecases.graduation import GraduationGate
from services.accounts.usecases.holds import Holds
from services.accounts.usecases.ledger import Ledger
from services.accounts.usecases.privacy import Privacy
from services.accounts.usecases.reads import AccountReads
from services.accounts.usecases.retention import HistoryRetention
from services.accounts.usecases.users import Users
from services.common.clock import Clock
from services.common.config import Settings
from services.common.kit import ServiceKit
from services.common.messaging.inbox import EventSink
from services.common.persistence.uow import unit_of_work
from services.common.rpc.server import Registration, ServiceRuntime
from services.common.rpc.user_data import UserDataServicer
from services.common.security.tokens import actor_key
from services.jobs.queue import JobQueue


def build(settings: Settings, *, clock: Clock | None = None) -> ServiceRuntime:
    kit = ServiceKit.create(SERVICE, settings, tables=OUTBOX, clock=clock)
    market = MarketDataClient(
        kit.stub("marketdata", marketdata_pb2_grpc.MarketDataServiceStub), settings.rpc_timeout_seconds, kit.credentials
    )
    key = actor_key(settings)
    deps = Deps(
        db=kit.database,
        uow=partial(unit_of_work, kit.database, kit.event_outbox, publish),
        clock=kit.clock,
        market=market,
        user_key=key,
    )
    queue = JobQueue(settings)
    privacy = Privacy(
        kit.database,
        kit.clock,
        key,
        cooling_days=settings.erasure_cooling_days,
        export_ttl=timedelta(hours=settings.export_ttl_hours),
        offer=queue.offer,
    )
    handlers = Handlers(Ledger(deps)).by_event_type()
    runtime = kit.runtime(
        [
            Registration.of(
                AccountsServicer(
                    AccountReads(deps),
                    Holds(deps),
                    Users(deps),
                    Expiration(
                        deps,
                        cutoff=timedelta(minutes=settings.do_not_exercise_cutoff_minutes),
                        sale_lead=timedelta(minutes=settings.option_pre_close_sale_minutes),
                    ),
                    GraduationGate(deps, settings.graduation_cycles, settings.graduation_cycle_days),
                    EndOfDay(deps, settings.margin_rate_bps),
                    HistoryRetention(deps),
                )
            ),
            Registration.of(PrivacyServicer(privacy)),
            Registration.of(EventSink(SERVICE, kit.database, kit.event_outbox, kit.clock, handlers, publish)),
            Registration.of(UserDataServicer(USER_TABLES, kit.database, kit.clock, erase=privacy.erase)),
        ],
        background=[privacy.offer_pending_exports],
    )
    runtime.closers.append(queue.close)
    return runtime
