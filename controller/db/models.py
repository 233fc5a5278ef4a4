"""ORM mapping of the three tables (the schema itself is owned by the Alembic migrations).

- ``User`` (``users``): the app's users, found by the app's reference, Stripe customer id or email.
- ``PassCatalogEntry`` (``pass_catalog``): which Stripe price sells which pass, per tenant.
- ``Subscription`` (``subscriptions``): one row per paid Checkout Session.

A test compares this metadata with the migrated database, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {str: Text(), int: BigInteger(), datetime: DateTime(timezone=True)}


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Partial: many users may lack a reference or a Stripe customer, but never share one.
        Index(
            "uq_users_tenant_reference",
            "tenant",
            "reference",
            unique=True,
            postgresql_where=text("reference IS NOT NULL"),
        ),
        Index(
            "uq_users_tenant_stripe_customer_id",
            "tenant",
            "stripe_customer_id",
            unique=True,
            postgresql_where=text("stripe_customer_id IS NOT NULL"),
        ),
        Index("ix_users_tenant_lower_email", "tenant", text("lower(email)")),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    tenant: Mapped[str]
    reference: Mapped[str | None]
    stripe_customer_id: Mapped[str | None]
    email: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PassCatalogEntry(Base):
    __tablename__ = "pass_catalog"
    __table_args__ = (
        # A price sells one pass; a pass may be sold by several prices (currencies, promotions).
        UniqueConstraint("tenant", "stripe_price_id"),
        Index("ix_pass_catalog_tenant_pass_id", "tenant", "pass_id"),
        CheckConstraint("duration_days > 0", name="duration_days_positive"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    tenant: Mapped[str]
    pass_id: Mapped[str]
    stripe_price_id: Mapped[str]
    name: Mapped[str | None]
    duration_days: Mapped[int | None] = mapped_column(Integer())  # None: the pass never ends
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint("source IN ('webhook', 'sync', 'backfill', 'manual')", name="source_known"),
        Index("ix_subscriptions_user_id", "user_id"),
        Index("ix_subscriptions_tenant_stripe_customer_id", "tenant", "stripe_customer_id"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    tenant: Mapped[str]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    pass_id: Mapped[str]
    checkout_session_id: Mapped[str] = mapped_column(unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(unique=True)
    stripe_customer_id: Mapped[str | None]
    status: Mapped[str]
    period_start: Mapped[datetime]
    period_end: Mapped[datetime | None]
    source: Mapped[str]
    livemode: Mapped[bool] = mapped_column(server_default=text("false"))
    amount_total: Mapped[int | None]
    currency: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
