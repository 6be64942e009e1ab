"""The shape every service keeps (README "Where things are"): the same rooms with the same
names, use cases that speak domain values (no generated protobuf code in them), and event
handler maps that agree with the one topology."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from services.common.config import SERVICES
from services.common.messaging import topology

ROOT = Path(__file__).resolve().parents[3]
ROOMS = ("app", "service", "usecases", "wire", "domain", "store")


def room(service: str, name: str) -> Path | None:
    base = ROOT / "services" / service
    for candidate in (base / f"{name}.py", base / name):
        if candidate.exists():
            return candidate
    return None


def modules(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_rooms(service):
    missing = [name for name in ROOMS if room(service, name) is None]
    assert not missing, f"services/{service} lacks {missing}"
    assert (ROOT / "services" / service / "migrations" / "env.py").exists()
    # A service that calls others has one named client per called service, in clients.py.
    calls_others = "kit.stub(" in (ROOT / "services" / service / "app.py").read_text()
    assert calls_others == (room(service, "clients") is not None), service


@pytest.mark.parametrize("service", SERVICES)
def test_no_use_case_imports_generated_protobuf_code(service):
    offenders = []
    for module in modules(room(service, "usecases")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""] + [alias.name for alias in node.names]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{module.relative_to(ROOT)}: {name}"
                for name in names
                if name.endswith(("_pb2", "_pb2_grpc")) or name.startswith("mbt.")
            ]
    assert not offenders, "use cases must speak domain values; convert in wire.py:\n" + "\n".join(offenders)


def handler_maps() -> dict[str, set[str]]:
    from services.accounts.events import Handlers as AccountHandlers
    from services.activities.events import Handlers as ActivityHandlers
    from services.matcher.events import HANDLED as MATCHER_HANDLED

    return {
        "accounts": set(AccountHandlers(None).by_event_type()),
        "activities": set(ActivityHandlers(None, None, None).by_event_type()),
        "matcher": set(MATCHER_HANDLED),
    }


def test_every_consumer_handles_exactly_what_the_topology_routes_to_it():
    maps = handler_maps()
    assert set(maps) == topology.consumers()
    for service, handled in maps.items():
        assert handled == topology.routed_to(service), service


def test_every_routed_event_is_a_message_some_service_emits():
    from services.common.rpc.protoregistry import message_class

    for event_type in topology.SUBSCRIPTIONS:
        assert message_class(event_type).DESCRIPTOR.full_name == event_type
