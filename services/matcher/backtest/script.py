"""The declarative order script: a backtest for REST users, without code.

    {"steps": [
      {"at": "2012-06-21T14:00:00Z",
       "submit": {"client_order_id": "entry", "symbol": "AMZN", "side": "buy", "qty": "10",
                  "order_type": "limit", "limit_price": "221.50", "time_in_force": "day"}},
      {"after_fill": "entry",
       "submit": {"client_order_id": "exit", "symbol": "AMZN", "side": "sell", "qty": "10",
                  "order_type": "limit", "limit_price": "222.50", "time_in_force": "gtc"}},
      {"at": "2012-06-21T19:00:00Z", "replace": {"client_order_id": "exit", "limit_price": "222.00"}},
      {"at": "2012-06-21T19:55:00Z", "cancel": {"client_order_id": "exit"}}
    ]}

Each step has one time — ``at`` (RFC 3339) or ``after_fill`` (a client_order_id: right
after that order fills) — and one action: ``submit`` (SubmitOrder's fields), ``replace``
(ReplaceOrder's fields, naming the order by ``client_order_id``) or ``cancel``. Submits
are validated when the script is read, as SubmitOrder validates them. While the backtest
runs, a submit the account refuses is kept as a rejected order, as the orders service
keeps it; any other refusal (the market closed for an ioc order, no fresh quote for a
market order, a cancel of a filled order) ends the backtest with that error.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.common.errors import DomainError, invalid_argument
from services.common.instruments import parse_symbol
from services.common.wire.conv import datetime_to_ns
from services.matcher.backtest.ledger import FillRecord, validate_submit
from services.matcher.backtest.strategy import Context, OptionQuotes, Strategy, replace_request, submit_request

MAX_STEPS = 1000
VERBS = ("submit", "replace", "cancel")


@dataclass(frozen=True)
class Step:
    number: int
    at_ns: int | None
    after_fill: str
    verb: str
    fields: dict


class ScriptError(Exception):
    """A step refused while the backtest runs (the message says which and why)."""


def parse_script(script: object) -> list[Step]:
    """Steps from the script's JSON object; invalid_argument naming the step and field."""
    if not isinstance(script, Mapping) or set(script) - {"steps"}:
        raise invalid_argument("a script is an object with one field, steps", "script")
    raw_steps = script.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise invalid_argument("script.steps must be a non-empty list", "script.steps")
    if len(raw_steps) > MAX_STEPS:
        raise invalid_argument(f"a script has at most {MAX_STEPS} steps", "script.steps")
    steps, known = [], set()
    for number, raw in enumerate(raw_steps):
        where = f"script.steps[{number}]"
        if not isinstance(raw, Mapping):
            raise invalid_argument(f"{where} must be an object", where)
        unknown = set(raw) - {"at", "after_fill", *VERBS}
        if unknown:
            raise invalid_argument(f"{where}: unknown field {sorted(unknown)[0]!r}", where)
        verbs = [v for v in VERBS if raw.get(v) is not None]
        if len(verbs) != 1:
            raise invalid_argument(f"{where} needs exactly one of submit, replace, cancel", where)
        verb = verbs[0]
        at, after_fill = raw.get("at"), raw.get("after_fill") or ""
        if (at is None) == (not after_fill):
            raise invalid_argument(f"{where} needs exactly one of at, after_fill", where)
        fields = raw[verb]
        if not isinstance(fields, Mapping):
            raise invalid_argument(f"{where}.{verb} must be an object", f"{where}.{verb}")
        fields = dict(fields)
        try:
            if verb == "submit":
                validate_submit(submit_request(fields))
                if fields.get("client_order_id"):
                    known.add(fields["client_order_id"])
            else:
                target = fields.get("client_order_id")
                if target not in known:
                    raise invalid_argument(
                        f"names no order submitted by an earlier step: {target!r}", "client_order_id"
                    )
                if verb == "replace":
                    replace_request("ord_check", {k: v for k, v in fields.items() if k != "client_order_id"})
                elif set(fields) != {"client_order_id"}:
                    raise invalid_argument("a cancel takes only client_order_id", "cancel")
        except DomainError as exc:
            field = exc.metadata.get("field", verb)
            raise invalid_argument(f"{where}.{verb}: {exc.message}", f"{where}.{verb}.{field}") from None
        if after_fill and after_fill not in known:
            raise invalid_argument(
                f"{where}.after_fill names no order submitted by an earlier step", f"{where}.after_fill"
            )
        steps.append(Step(number, _time(at, where) if at is not None else None, after_fill, verb, fields))
    return steps


def _time(raw: object, where: str) -> int:
    if not isinstance(raw, str):
        raise invalid_argument(f"{where}.at must be an RFC 3339 time", f"{where}.at")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_argument(f"{where}.at must be an RFC 3339 time, got {raw!r}", f"{where}.at") from None
    if moment.tzinfo is None:
        raise invalid_argument(f"{where}.at needs a time zone (e.g. Z)", f"{where}.at")
    return datetime_to_ns(moment)


class ScriptStrategy(Strategy):
    name = "script"
    description = "a declarative order script"

    def __init__(self, steps: list[Step], params: Mapping[str, str] | None = None) -> None:
        super().__init__(params)
        self.steps = steps
        named = [parse_symbol(str(s.fields["symbol"])) for s in steps if s.verb == "submit"]
        self.symbols = tuple(sorted({spec.symbol for spec in named if not spec.is_option}))
        # Option contracts a step names are quoted by the replay's model from the start.
        contracts = {spec.symbol: spec for spec in named if spec.is_option}
        self.options = tuple(
            OptionQuotes(contracts[symbol].underlying, contract=symbol) for symbol in sorted(contracts)
        )
        self.order_ids: dict[str, str] = {}

    def on_start(self, ctx: Context) -> None:
        for step in self.steps:
            if step.at_ns is not None:
                if step.at_ns < ctx.now_ns:
                    raise ScriptError(
                        f"step {step.number} is at {ctx.now.isoformat()} or before: the backtest starts after it"
                    )
                ctx.schedule(step.at_ns, functools.partial(self._play, step=step))

    def on_fill(self, ctx: Context, fill: FillRecord) -> None:
        client_order_id = ctx.order(fill.order_id).client_order_id
        for step in self.steps:
            if step.after_fill == client_order_id:
                self._play(ctx, step)

    def _play(self, ctx: Context, step: Step) -> None:
        fields = dict(step.fields)
        try:
            if step.verb == "submit":
                order = ctx.submit(**fields)
                self.order_ids[order.client_order_id] = order.order_id
                return
            order_id = self.order_ids.get(fields.pop("client_order_id"))
            if order_id is None:
                raise DomainError("NOT_FOUND", "its order was never accepted")
            if step.verb == "cancel":
                ctx.cancel(order_id)
            else:
                ctx.replace(order_id, **fields)
        except DomainError as refusal:
            order_id = refusal.metadata.get("order_id")
            if step.verb == "submit" and order_id:
                self.order_ids[ctx.order(order_id).client_order_id] = order_id
                return  # kept as a rejected order, as the orders service keeps it
            raise ScriptError(
                f"step {step.number} ({step.verb}) refused: {refusal.reason.lower()}: {refusal.message}"
            ) from None
