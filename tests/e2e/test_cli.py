"""The mbt command: scoped user tokens, read-only ops tokens, new signing keys."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from services.cli import main
from services.common.config import Settings
from services.common.security.tokens import TokenKeys, TokenVerifier
from tests.support.mesh import free_port
from tests.support.upstream import scripted_upstream

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = TokenVerifier(TokenKeys.development())


def issued(capsys, *argv: str):
    assert main(list(argv)) == 0
    return VERIFIER.verify(capsys.readouterr().out.strip())


def test_a_user_token_with_a_scope_tier_and_lifetime(capsys):
    claims = issued(capsys, "token", "user", "alice", "--scope", "read", "--tier", "pro", "--ttl", "600")
    assert (claims.kind, claims.subject, claims.scopes, claims.tier, claims.session_id) == (
        "user",
        "alice",
        {"read"},
        "pro",
        "",
    )
    assert claims.expires_at - claims.issued_at == 600


def test_a_service_token_for_platform_tooling(capsys):
    claims = issued(capsys, "token", "service", "console", "--ttl", "120")
    assert (claims.kind, claims.subject, claims.expires_at - claims.issued_at) == ("service", "console", 120)


def test_an_ops_token_is_read_only(capsys):
    claims = issued(capsys, "token", "ops", "carol")
    assert (claims.kind, claims.subject, claims.scopes) == ("ops", "carol", {"read"})
    assert claims.expires_at - claims.issued_at == 900


@pytest.mark.parametrize(
    "argv",
    [
        ["token", "user", "alice", "--scope", "admin"],
        ["token", "user", "alice", "--ttl", "999999"],
        ["token", "ops", "carol", "--ttl", "7200"],
        ["token", "user", "not a user"],
        ["token", "user", "alice", "--tier", "gold"],
    ],
)
def test_bad_requests_are_refused(argv):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2


def test_a_new_key_is_accepted_as_configuration(capsys):
    assert main(["keys", "new"]) == 0
    entry = capsys.readouterr().out.strip()
    settings = Settings.from_env({"MBT_USER_TOKEN_KEYS": entry})
    assert TokenKeys.from_settings(settings).user.signing[0] == entry.split(":")[0]


def test_production_without_keys_issues_nothing(capsys, monkeypatch):
    monkeypatch.setenv("MBT_ENV", "production")
    assert main(["token", "user", "alice", "--tier", "free"]) == 2
    assert capsys.readouterr().out == ""


async def test_the_tier_is_asked_of_accounts_and_falls_back_to_free():
    async with scripted_upstream() as accounts:
        accounts.tiers["pat"] = "pro_plus"
        env = {**os.environ, "MBT_ACCOUNTS_TARGET": f"127.0.0.1:{accounts.port}"}
        tiers = {}
        for user in ("pat", "newcomer"):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.cli",
                "token",
                "user",
                user,
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, _ = await process.communicate()
            assert process.returncode == 0
            tiers[user] = VERIFIER.verify(out.decode().strip()).tier
    assert tiers == {"pat": "pro_plus", "newcomer": "free"}


async def test_no_user_token_when_accounts_cannot_be_reached_unless_the_tier_is_given():
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "MBT_ACCOUNTS_TARGET": target}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "token",
        "user",
        "pat",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert (process.returncode, out) == (1, b"")
    assert target in err.decode() and "--tier" in err.decode()

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "token",
        "user",
        "pat",
        "--tier",
        "pro",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    assert VERIFIER.verify(out.decode().strip()).tier == "pro"
