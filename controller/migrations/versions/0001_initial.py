"""Initial schema: users, pass_catalog, subscriptions.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Written by hand, not imported from the models: a migration is a frozen record of what it did.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("stripe_customer_id", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_index(
        "uq_users_tenant_reference",
        "users",
        ["tenant", "reference"],
        unique=True,
        postgresql_where=sa.text("reference IS NOT NULL"),
    )
    op.create_index(
        "uq_users_tenant_stripe_customer_id",
        "users",
        ["tenant", "stripe_customer_id"],
        unique=True,
        postgresql_where=sa.text("stripe_customer_id IS NOT NULL"),
    )
    op.create_index("ix_users_tenant_lower_email", "users", ["tenant", sa.text("lower(email)")])

    op.create_table(
        "pass_catalog",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("pass_id", sa.Text(), nullable=False),
        sa.Column("stripe_price_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("duration_days", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pass_catalog"),
        sa.UniqueConstraint("tenant", "stripe_price_id", name="uq_pass_catalog_tenant_stripe_price_id"),
        sa.CheckConstraint("duration_days > 0", name="ck_pass_catalog_duration_days_positive"),
    )
    op.create_index("ix_pass_catalog_tenant_pass_id", "pass_catalog", ["tenant", "pass_id"])

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("pass_id", sa.Text(), nullable=False),
        sa.Column("checkout_session_id", sa.Text(), nullable=False),
        sa.Column("stripe_subscription_id", sa.Text(), nullable=True),
        sa.Column("stripe_customer_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("period_start", TZ, nullable=False),
        sa.Column("period_end", TZ, nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("livemode", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("amount_total", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_subscriptions_user_id_users"),
        # The promise of the product: exactly one row per Checkout Session.
        sa.UniqueConstraint("checkout_session_id", name="uq_subscriptions_checkout_session_id"),
        sa.UniqueConstraint("stripe_subscription_id", name="uq_subscriptions_stripe_subscription_id"),
        sa.CheckConstraint(
            "source IN ('webhook', 'sync', 'backfill', 'manual')", name="ck_subscriptions_source_known"
        ),
    )
    op.create_index("ix_subscriptions_user_id", "subscriptions", ["user_id"])
    op.create_index(
        "ix_subscriptions_tenant_stripe_customer_id", "subscriptions", ["tenant", "stripe_customer_id"]
    )


def downgrade() -> None:
    op.drop_table("subscriptions")
    op.drop_table("pass_catalog")
    op.drop_table("users")
