"""The support workflow as a person uses it: `passops status`, `resync`, `catalog`, as processes.

The controller runs for real (kopf on the emulator); the CLI runs as its own process with
KUBECONFIG pointing at the emulator, exactly as `kubectl passops ...` would.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from passops.testing import stripe_events as se
from passops.testing.emulator import EmulatedCluster
from tests.e2e.scenarios import COMPLETED, _accepted, _user
from tests.e2e.stack import Stack
from tests.fixtures.stack import running_stack

PASSOPS = str(Path(sys.executable).with_name("passops"))
DEAD_DATABASE = "postgresql://passops:hunter2-secret@127.0.0.1:9/passops"


async def cli(*args: str, kubeconfig: str, database_url: str | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PASSOPS_DATABASE_URL", "DATABASE_URL")}
    env.update(KUBECONFIG=kubeconfig, COLUMNS="200")
    if database_url:
        env["PASSOPS_DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        PASSOPS, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    # Tables wrap long cells: compare words, not line breaks.
    return int(process.returncode or 0), " ".join(out.decode().split())


async def test_status_explains_an_unknown_price_and_catalog_add_plus_resync_fixes_it(
    stack: Stack, emulator: EmulatedCluster, clean_database_url: str
) -> None:
    session = se.paid_session(client_reference_id=_user(), metadata={"price_id": "price_support_new"})
    name = await _accepted(stack, se.event(COMPLETED, session))
    await stack.wait_for(
        name, lambda b: ((b.get("status") or {}).get("lastError") or {}).get("reason") == "UnknownPrice"
    )

    code, out = await cli("status", name, kubeconfig=emulator.kubeconfig, database_url=clean_database_url)
    print(out)
    assert code == 0, out
    assert "UnknownPrice" in out and "price_support_new" in out
    assert "passops catalog add" in out and f"passops resync {name}" in out
    assert "database row" in out and "none" in out

    code, out = await cli(
        "catalog",
        "add",
        "--pass",
        "support-pass",
        "--price",
        "price_support_new",
        "--days",
        "30",
        kubeconfig=emulator.kubeconfig,
        database_url=clean_database_url,
    )
    assert code == 0 and "support-pass" in out, out
    code, out = await cli("catalog", "list", kubeconfig=emulator.kubeconfig, database_url=clean_database_url)
    assert "price_support_new" in out

    code, out = await cli("resync", "--stalled", "--wait", kubeconfig=emulator.kubeconfig)
    assert code == 0, out
    assert f"{name}: Ready" in out
    assert len(await stack.rows(session["id"])) == 1


async def test_status_explains_a_purchase_waiting_for_its_user(
    emulator: EmulatedCluster, clean_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from passops.config import UserPolicy

    async with running_stack(emulator, clean_database_url, monkeypatch, user_policy=UserPolicy.WAIT) as stack:
        session = se.paid_session(client_reference_id="user-not-yet", metadata={"pass_id": "day-pass"})
        name = await _accepted(stack, se.event(COMPLETED, session))
        await stack.wait_for(name, lambda b: (b.get("status") or {}).get("phase") == "Pending")
        code, out = await cli("status", name, kubeconfig=emulator.kubeconfig, database_url=clean_database_url)
        assert code == 0, out
        assert "UserNotFound" in out and "user-not-yet" in out
        assert "has not created this user yet" in out and "retries on its own" in out


async def test_status_explains_a_dead_database_without_its_password(
    emulator: EmulatedCluster, clean_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(emulator, clean_database_url, monkeypatch, database_url=DEAD_DATABASE) as stack:
        session = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
        name = await _accepted(stack, se.event(COMPLETED, session))
        await stack.wait_for(name, lambda b: (b.get("status") or {}).get("attempts", 0) >= 2)
        code, out = await cli("status", name, kubeconfig=emulator.kubeconfig, database_url=DEAD_DATABASE)
        assert code == 1, out  # the database row cannot be shown: say so, exit non-zero
        assert "DatabaseUnavailable" in out and "PASSOPS_DATABASE_URL" in out
        assert "cannot reach the database" in out
        assert "hunter2-secret" not in out
        body = await stack.purchases.get(name)
        assert "hunter2-secret" not in str(body)


async def test_every_command_fails_clearly_on_bad_input(emulator: EmulatedCluster, tmp_path: Path) -> None:
    code, out = await cli("status", "no-such-purchase", kubeconfig=emulator.kubeconfig)
    assert code == 1 and "no PassPurchase 'no-such-purchase'" in out
    code, out = await cli("status", "-l", "a in (b", kubeconfig=emulator.kubeconfig)
    assert code == 1 and "invalid label selector" in out
    code, out = await cli("resync", kubeconfig=emulator.kubeconfig)
    assert code == 1 and "name purchases" in out
    code, out = await cli("status", "--all", kubeconfig=str(tmp_path / "missing"))
    assert code == 1 and "no Kubernetes configuration" in out
    unreachable = tmp_path / "kubeconfig"
    text = await asyncio.to_thread(Path(emulator.kubeconfig).read_text)
    await asyncio.to_thread(unreachable.write_text, text.replace(emulator.url, "http://127.0.0.1:9"))
    code, out = await cli("status", "--all", kubeconfig=str(unreachable))
    assert code == 1 and "cannot reach the Kubernetes API" in out
    code, out = await cli("catalog", "list", kubeconfig=emulator.kubeconfig, database_url=DEAD_DATABASE)
    assert code == 1 and "cannot reach the database" in out and "hunter2-secret" not in out
