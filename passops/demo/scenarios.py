"""The purchases the demo makes: each a list of Stripe deliveries and the phase it must end in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from passops.resource import Phase
from passops.testing import stripe_events as se

TENANT = "default"

# (pass id, Stripe price id, name, duration in days)
CATALOG = (
    ("day-pass", "price_1DemoDayPass", "Day pass", 1),
    ("month-pass", "price_1DemoMonthPass", "Month pass", 30),
    ("year-pass", "price_1DemoYearPass", "Year pass", 365),
)


@dataclass
class Step:
    event: dict[str, Any]
    expect_outcome: str  # what the gateway must answer: accepted | duplicate
    then_phase: Phase | None = None  # wait for this phase before the next step
    then_stalled: str | None = None  # wait for Stalled=True with this reason before the next step


@dataclass
class Scenario:
    title: str
    session_id: str
    steps: list[Step]
    final_phase: Phase
    row_expected: bool
    notes: list[str] = field(default_factory=list)
    # What support does for a Stalled purchase: `passops catalog add` (pass, price, days), then resync.
    support_fix: tuple[str, str, int] | None = None


def build() -> list[Scenario]:
    card = se.paid_session(
        client_reference_id="user-ada", email="ada@example.com", metadata={"pass_id": "month-pass"}
    )
    card_event = se.event("checkout.session.completed", card)

    sepa = se.async_unpaid_session(
        client_reference_id="user-grace",
        email="grace@example.com",
        metadata={"price_id": "price_1DemoDayPass"},
    )
    sepa_paid = dict(sepa, payment_status="paid")

    guest = se.paid_session(email="linus@example.com", metadata={"price_id": "price_1DemoYearPass"})

    failed = se.async_unpaid_session(
        method="us_bank_account", email="ken@example.com", metadata={"pass_id": "day-pass"}
    )

    new_price = se.paid_session(
        client_reference_id="user-alan",
        email="alan@example.com",
        metadata={"price_id": "price_1DemoWeekPass"},
    )

    free = se.free_session(
        client_reference_id="user-barbara", email="barbara@example.com", metadata={"pass_id": "day-pass"}
    )

    return [
        Scenario(
            "card payment",
            card["id"],
            [Step(card_event, "accepted")],
            Phase.READY,
            row_expected=True,
        ),
        Scenario(
            "the same event delivered again",
            card["id"],
            [Step(card_event, "duplicate")],
            Phase.READY,
            row_expected=True,
            notes=["no second resource, no second row"],
        ),
        Scenario(
            "SEPA debit: unpaid, then async_payment_succeeded",
            sepa["id"],
            [
                Step(
                    se.event("checkout.session.completed", sepa),
                    "accepted",
                    then_phase=Phase.AWAITING_PAYMENT,
                ),
                Step(se.event("checkout.session.async_payment_succeeded", sepa_paid), "accepted"),
            ],
            Phase.READY,
            row_expected=True,
        ),
        Scenario(
            "guest checkout without client_reference_id",
            guest["id"],
            [Step(se.event("checkout.session.completed", guest), "accepted")],
            Phase.READY,
            row_expected=True,
            notes=["user found or created by Stripe customer / email"],
        ),
        Scenario(
            "ACH debit that bounces",
            failed["id"],
            [
                Step(
                    se.event("checkout.session.completed", failed),
                    "accepted",
                    then_phase=Phase.AWAITING_PAYMENT,
                ),
                Step(se.event("checkout.session.async_payment_failed", failed), "accepted"),
            ],
            Phase.FAILED,
            row_expected=False,
        ),
        Scenario(
            "a price missing from the catalog, fixed by support",
            new_price["id"],
            [
                Step(
                    se.event("checkout.session.completed", new_price), "accepted", then_stalled="UnknownPrice"
                )
            ],
            Phase.READY,
            row_expected=True,
            support_fix=("week-pass", "price_1DemoWeekPass", 7),
        ),
        Scenario(
            "free pass (100% coupon, nothing to pay)",
            free["id"],
            [Step(se.event("checkout.session.completed", free), "accepted")],
            Phase.READY,
            row_expected=True,
        ),
    ]
