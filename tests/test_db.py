"""The database layer on a real PostgreSQL: the promises the controller (and support staff) rely on."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg.errors
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool, QueuePool

from controller.db import (
    DatabaseUnavailable,
    Ledger,
    MatchedBy,
    Source,
    SubscriptionConflict,
    SubscriptionFacts,
    UnknownUser,
    UpsertOutcome,
    UserMatch,
    create_engine,
    current_revision,
    head_revision,
    upgrade,
)
from controller.db.errors import is_transient
from controller.db.models import Base

TENANT = "acme"
PURCHASED_AT = datetime(2026, 12, 1, 10, 30, 15, 123456, tzinfo=UTC)
PASSWORD = "s3cr3t-Pa55word"


def facts(user_id: int, session: str = "cs_test_a1B2", **overrides: object) -> SubscriptionFacts:
    values: dict[str, object] = {
        "tenant": TENANT,
        "checkout_session_id": session,
        "user_id": user_id,
        "pass_id": "monthly",
        "purchased_at": PURCHASED_AT,
        "source": Source.WEBHOOK,
        "duration_days": 30,
        "stripe_customer_id": "cus_1",
        "amount_total": 1500,
        "currency": "eur",
    }
    values.update(overrides)
    return SubscriptionFacts(**values)  # type: ignore[arg-type]


async def new_user(ledger: Ledger, customer: str = "cus_1", reference: str | None = None) -> int:
    match = await ledger.resolve_user(TENANT, reference, customer, None, create=True)
    assert match is not None
    return match.user_id


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


# --- migrations ----------------------------------------------------------------------------------


def test_migrate_to_head_then_rerun_is_a_no_op(empty_database_url: str) -> None:
    assert current_revision(empty_database_url) is None
    assert upgrade(empty_database_url) == head_revision()
    assert upgrade(empty_database_url) == head_revision()
    assert current_revision(empty_database_url) == head_revision()


def test_concurrent_migrators_both_succeed(empty_database_url: str) -> None:
    # A Helm hook and a `passops migrate` by hand may run at once: the second waits, then does nothing.
    code = "import sys; from controller.db import upgrade; print(upgrade(sys.argv[1]))"
    migrators = [
        subprocess.Popen([sys.executable, "-c", code, empty_database_url], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [migrator.communicate(timeout=60)[0].strip() for migrator in migrators]
    assert [m.returncode for m in migrators] == [0, 0, 0]
    assert outputs == [head_revision()] * 3


def test_models_agree_with_the_migrations(clean_database_url: str) -> None:
    engine = create_sync_engine(clean_database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            indexes = {ix["name"] for ix in inspect(connection).get_indexes("users")}
        assert {"uq_users_tenant_reference", "ix_users_tenant_lower_email"} <= indexes
    finally:
        engine.dispose()


# --- the subscription row ------------------------------------------------------------------------


async def test_twenty_concurrent_upserts_make_exactly_one_row(clean_database_url: str) -> None:
    engine = create_engine(clean_database_url, pool_size=20, max_overflow=0)
    try:
        ledger = Ledger(engine)
        user_id = await new_user(ledger)
        results = await asyncio.gather(*(ledger.upsert_subscription(facts(user_id)) for _ in range(20)))
        pool = engine.sync_engine.pool
        assert isinstance(pool, QueuePool) and pool.checkedin() > 1  # really on several connections
    finally:
        await engine.dispose()
    assert len({r.id for r in results}) == 1
    assert sorted(r.outcome for r in results) == [UpsertOutcome.CREATED] + [UpsertOutcome.UNCHANGED] * 19
    engine = create_engine(clean_database_url)
    try:
        assert await count(engine, "subscriptions") == 1
    finally:
        await engine.dispose()


async def test_replay_returns_the_same_row_untouched(ledger: Ledger) -> None:
    user_id = await new_user(ledger)
    first = await ledger.upsert_subscription(facts(user_id))
    before = await ledger.get_subscription("cs_test_a1B2")
    replay = await ledger.upsert_subscription(facts(user_id))
    after = await ledger.get_subscription("cs_test_a1B2")
    assert first.outcome is UpsertOutcome.CREATED
    assert (replay.id, replay.outcome) == (first.id, UpsertOutcome.UNCHANGED)
    assert before == after  # not even updated_at moves on a replay


async def test_row_is_written_as_promised(ledger: Ledger) -> None:
    user_id = await new_user(ledger)
    await ledger.upsert_subscription(facts(user_id, stripe_subscription_id="sub_1", livemode=True))
    await ledger.upsert_subscription(facts(user_id, session="cs_forever", duration_days=None))
    row = await ledger.get_subscription("cs_test_a1B2")
    assert row is not None
    assert (row.user_id, row.pass_id, row.status, row.source) == (user_id, "monthly", "active", "webhook")
    assert row.period_start == PURCHASED_AT
    assert row.period_end == PURCHASED_AT + timedelta(days=30)
    assert (row.stripe_subscription_id, row.livemode, row.amount_total, row.currency) == (
        "sub_1",
        True,
        1500,
        "eur",
    )
    forever = await ledger.get_subscription("cs_forever")
    assert forever is not None and forever.period_end is None
    assert await ledger.get_subscription("cs_unknown") is None


async def test_row_changed_by_hand_is_restored(ledger: Ledger, db_engine: AsyncEngine) -> None:
    user_id = await new_user(ledger)
    other_user = await new_user(ledger, customer="cus_other")
    created = await ledger.upsert_subscription(facts(user_id))
    async with db_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE subscriptions SET status = 'cancelled', user_id = :other, period_end = NULL,"
                " source = 'manual' WHERE id = :id"
            ),
            {"other": other_user, "id": created.id},
        )
    restored = await ledger.upsert_subscription(facts(user_id))
    assert (restored.id, restored.outcome) == (created.id, UpsertOutcome.UPDATED)
    row = await ledger.get_subscription("cs_test_a1B2")
    assert row is not None
    assert (row.status, row.user_id, row.source) == ("active", user_id, "webhook")
    assert row.period_end == PURCHASED_AT + timedelta(days=30)
    assert row.updated_at >= row.created_at


async def test_row_deleted_by_hand_is_recreated(ledger: Ledger, db_engine: AsyncEngine) -> None:
    user_id = await new_user(ledger)
    await ledger.upsert_subscription(facts(user_id))
    async with db_engine.begin() as connection:
        await connection.execute(text("DELETE FROM subscriptions"))
    again = await ledger.upsert_subscription(facts(user_id))
    assert again.outcome is UpsertOutcome.CREATED
    assert await count(db_engine, "subscriptions") == 1


async def test_stripe_subscription_id_belongs_to_one_session(ledger: Ledger, db_engine: AsyncEngine) -> None:
    user_id = await new_user(ledger)
    await ledger.upsert_subscription(facts(user_id, session="cs_1", stripe_subscription_id="sub_1"))
    with pytest.raises(SubscriptionConflict, match="sub_1"):
        await ledger.upsert_subscription(facts(user_id, session="cs_2", stripe_subscription_id="sub_1"))
    # Many one-time purchases have no subscription id at all: NULLs never collide.
    await ledger.upsert_subscription(facts(user_id, session="cs_3"))
    await ledger.upsert_subscription(facts(user_id, session="cs_4"))
    assert await count(db_engine, "subscriptions") == 3


async def test_subscription_for_a_vanished_user_is_refused(ledger: Ledger) -> None:
    with pytest.raises(UnknownUser):
        await ledger.upsert_subscription(facts(user_id=424242))


async def test_listing_is_newest_first_and_filtered(ledger: Ledger) -> None:
    alice = await new_user(ledger, customer="cus_alice")
    bob = await new_user(ledger, customer="cus_bob")
    await ledger.upsert_subscription(facts(alice, session="cs_a1", stripe_customer_id="cus_alice"))
    await ledger.upsert_subscription(facts(bob, session="cs_b1", stripe_customer_id="cus_bob"))
    await ledger.upsert_subscription(facts(alice, session="cs_a2", stripe_customer_id="cus_alice"))
    every = await ledger.list_subscriptions()
    assert [r.checkout_session_id for r in every] == ["cs_a2", "cs_b1", "cs_a1"]
    assert [r.checkout_session_id for r in await ledger.list_subscriptions(user_id=alice)] == [
        "cs_a2",
        "cs_a1",
    ]
    assert len(await ledger.list_subscriptions(stripe_customer_id="cus_bob")) == 1
    assert await ledger.list_subscriptions(tenant="other") == []
    assert len(await ledger.list_subscriptions(limit=2)) == 2


def test_naive_purchase_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        facts(1, purchased_at=datetime(2026, 12, 1))


# --- users ---------------------------------------------------------------------------------------


async def test_user_resolution_prefers_reference_then_customer_then_email(
    ledger: Ledger, db_engine: AsyncEngine
) -> None:
    async with db_engine.begin() as connection:
        ids = (
            await connection.execute(
                text(
                    "INSERT INTO users (tenant, reference, stripe_customer_id, email) VALUES"
                    " (:t, 'u-1', NULL, NULL), (:t, NULL, 'cus_2', NULL), (:t, NULL, NULL, 'Ann@Example.com')"
                    " RETURNING id"
                ),
                {"t": TENANT},
            )
        ).scalars()
        by_reference, by_customer, by_email = ids
    got = await ledger.resolve_user(TENANT, "u-1", "cus_2", "ann@example.com", create=False)
    assert got is not None and (got.user_id, got.matched_by) == (by_reference, MatchedBy.REFERENCE)
    got = await ledger.resolve_user(TENANT, "u-unknown", "cus_2", "ann@example.com", create=False)
    assert got is not None and (got.user_id, got.matched_by) == (by_customer, MatchedBy.CUSTOMER)
    got = await ledger.resolve_user(TENANT, None, None, "ANN@example.COM", create=False)
    assert got is not None and (got.user_id, got.matched_by) == (by_email, MatchedBy.EMAIL)
    # Tenants are separate worlds.
    assert await ledger.resolve_user("other", "u-1", "cus_2", "ann@example.com", create=False) is None


async def test_user_found_by_email_or_reference_gets_the_customer_linked(ledger: Ledger) -> None:
    async with ledger.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO users (tenant, reference, email)"
                " VALUES (:t, NULL, 'bo@example.com'), (:t, 'u-9', NULL)"
            ),
            {"t": TENANT},
        )
    by_email = await ledger.resolve_user(TENANT, None, "cus_bo", "Bo@Example.com", create=False)
    assert by_email is not None and by_email.matched_by is MatchedBy.EMAIL and by_email.linked_customer
    again = await ledger.resolve_user(TENANT, None, "cus_bo", None, create=False)
    assert again is not None and (again.user_id, again.matched_by) == (by_email.user_id, MatchedBy.CUSTOMER)

    by_reference = await ledger.resolve_user(TENANT, "u-9", "cus_nine", None, create=False)
    assert by_reference is not None and by_reference.linked_customer
    # A user already linked to another Stripe customer keeps it (one person may have several).
    second = await ledger.resolve_user(TENANT, "u-9", "cus_nine_again", None, create=False)
    assert second is not None and second.user_id == by_reference.user_id and not second.linked_customer
    assert await ledger.resolve_user(TENANT, None, "cus_nine", None, create=False) == UserMatch(
        by_reference.user_id, MatchedBy.CUSTOMER
    )


async def test_unknown_user_is_created_only_when_asked(ledger: Ledger) -> None:
    assert await ledger.resolve_user(TENANT, "u-new", "cus_new", "new@example.com", create=False) is None
    created = await ledger.resolve_user(TENANT, "u-new", "cus_new", "new@example.com", create=True)
    assert created is not None and created.matched_by is MatchedBy.CREATED
    found = await ledger.resolve_user(TENANT, "u-new", None, None, create=False)
    assert found is not None and (found.user_id, found.matched_by) == (created.user_id, MatchedBy.REFERENCE)
    # Nothing to know the buyer by: nothing to create.
    assert await ledger.resolve_user(TENANT, None, "", "  ", create=True) is None


@pytest.mark.parametrize(
    "identities",
    [
        pytest.param([(None, "cus_race", "race@example.com")] * 20, id="same-customer"),
        pytest.param([(None, None, "race@example.com")] * 20, id="email-only"),
        pytest.param(
            [("u-race", None, "race@example.com"), (None, "cus_race", "RACE@example.com")] * 10,
            id="different-identifiers-same-email",
        ),
    ],
)
async def test_concurrent_creations_make_one_user(
    clean_database_url: str, identities: list[tuple[str | None, str | None, str | None]]
) -> None:
    engine = create_engine(clean_database_url, pool_size=20, max_overflow=0)
    try:
        ledger = Ledger(engine)
        matches = await asyncio.gather(
            *(ledger.resolve_user(TENANT, ref, cus, email, create=True) for ref, cus, email in identities)
        )
        assert await count(engine, "users") == 1
    finally:
        await engine.dispose()
    assert len({m.user_id for m in matches if m is not None}) == 1
    assert [m.matched_by for m in matches if m is not None].count(MatchedBy.CREATED) == 1


# --- catalog -------------------------------------------------------------------------------------


async def test_pass_resolution_by_pass_id_then_price(ledger: Ledger) -> None:
    monthly = await ledger.add_catalog_entry(TENANT, "monthly", "price_M", "Monthly pass", 30)
    yearly = await ledger.add_catalog_entry(TENANT, "yearly", "price_Y", None, 365)
    assert await ledger.resolve_pass(TENANT, "monthly", None) == monthly
    assert await ledger.resolve_pass(TENANT, None, "price_Y") == yearly
    assert await ledger.resolve_pass(TENANT, "monthly", "price_Y") == monthly  # pass id wins
    assert await ledger.resolve_pass(TENANT, "retired-pass", "price_Y") == yearly
    assert await ledger.resolve_pass(TENANT, None, "price_unknown") is None
    assert await ledger.resolve_pass(TENANT, None, None) is None
    assert await ledger.resolve_pass("other-tenant", None, "price_M") is None


async def test_a_pass_can_be_sold_by_several_prices_and_entries_are_keyed_by_price(ledger: Ledger) -> None:
    """`catalog add` of a second price for a pass adds a price; the first keeps selling it."""
    eur = await ledger.add_catalog_entry(TENANT, "day", "price_D_eur", "Day", 1)
    usd = await ledger.add_catalog_entry(TENANT, "day", "price_D_usd", "Day", 1)
    assert usd.id != eur.id
    assert (await ledger.resolve_pass(TENANT, None, "price_D_eur")) == eur
    assert (await ledger.resolve_pass(TENANT, None, "price_D_usd")) == usd
    assert (await ledger.resolve_pass(TENANT, "day", None)) == eur  # the oldest entry of the pass
    # The same price again re-points it (a correction), it does not add a row.
    moved = await ledger.add_catalog_entry(TENANT, "week", "price_D_usd", "Week", 7)
    assert moved.id == usd.id and (moved.pass_id, moved.duration_days) == ("week", 7)
    await ledger.add_catalog_entry("other", "day", "price_D_usd")
    assert [(e.tenant, e.pass_id, e.stripe_price_id) for e in await ledger.list_catalog()] == [
        ("acme", "day", "price_D_eur"),
        ("acme", "week", "price_D_usd"),
        ("other", "day", "price_D_usd"),
    ]


# --- failures ------------------------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a black-holed database)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


async def test_dead_database_is_unavailable_fast_without_leaking_the_password(closed_port: int) -> None:
    url = f"postgresql://passops:{PASSWORD}@127.0.0.1:{closed_port}/passops"
    engine = create_engine(url)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await Ledger(engine).resolve_user(TENANT, "u-1", None, None, create=True)
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 3
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert f"127.0.0.1:{closed_port}" in str(caught.value)  # but says where it tried

    with pytest.raises(DatabaseUnavailable) as caught:
        upgrade(url + f"?password={PASSWORD}")
    assert PASSWORD not in str(caught.value)


async def test_black_holed_database_times_out_instead_of_hanging(silent_port: int) -> None:
    engine = create_engine(
        f"postgresql://passops:{PASSWORD}@127.0.0.1:{silent_port}/passops", connect_timeout=2
    )
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable):
            await Ledger(engine).ping()
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 6


async def test_connection_killed_by_the_server_is_replaced(ledger: Ledger, clean_database_url: str) -> None:
    await ledger.ping()
    admin = create_engine(clean_database_url)
    try:
        async with admin.connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await admin.dispose()
    await ledger.ping()  # pre-ping noticed the dead pooled connection and opened a new one


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (psycopg.errors.SerializationFailure("x"), True),
        (psycopg.errors.DeadlockDetected("x"), True),
        (psycopg.errors.AdminShutdown("x"), True),
        (psycopg.errors.CannotConnectNow("x"), True),
        (psycopg.errors.TooManyConnections("x"), True),
        (psycopg.OperationalError("connection refused"), True),
        (psycopg.errors.UniqueViolation("x"), False),
        (psycopg.errors.UndefinedTable("x"), False),
        (ValueError("x"), False),
    ],
)
def test_which_errors_are_worth_a_retry(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
