"""MBT never stores a broker credential, API key or access token: no table may have a
column that looks like one. Passkeys are public keys and are allowed by name."""

import re
import subprocess
from pathlib import Path

from gateway.store import Base as GatewayBase
from services.accounts.store import Base as AccountsBase
from services.activities.store import Base as ActivitiesBase
from services.marketdata.store import Base as MarketDataBase
from services.orders.store import Base as OrdersBase

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(
    r"(api_?key|secret|password|passwd|access_?token|refresh_?token|broker|credential|"
    r"private_?key|auth_?token|session_?token)",
    re.I,
)
ALLOWED = {("gateway_passkeys", "credential_id"), ("gateway_passkeys", "credential_public_key")}


def all_metadata():
    return [
        AccountsBase.metadata,
        OrdersBase.metadata,
        MarketDataBase.metadata,
        ActivitiesBase.metadata,
        GatewayBase.metadata,
    ]


def test_no_table_has_a_credential_like_column():
    offending = [
        (table.name, column.name)
        for metadata in all_metadata()
        for table in metadata.tables.values()
        for column in table.columns
        if FORBIDDEN.search(column.name) and (table.name, column.name) not in ALLOWED
    ]
    assert offending == []


def test_no_migration_creates_a_credential_like_column():
    pattern = re.compile(r"sa\.Column\('([^']+)'")
    offending = []
    migrations = [*ROOT.glob("services/*/migrations/versions/*.py"), *ROOT.glob("gateway/migrations/versions/*.py")]
    assert any(path.parts[-4] == "gateway" for path in migrations)
    for path in migrations:
        for name in pattern.findall(path.read_text()):
            if FORBIDDEN.search(name) and not any(name == allowed for _, allowed in ALLOWED):
                offending.append((path.name, name))
    assert offending == []


def test_the_grep_ci_runs_finds_nothing():
    result = subprocess.run(
        [
            "grep",
            "-rniE",
            r"(api_key|access_token|broker_token|refresh_token|password)[a-z_]*\s*[:=].*(Column|mapped_column)",
            "--include=*.py",
            "services",
            "gateway",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout
