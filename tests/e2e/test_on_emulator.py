"""The e2e scenarios with kopf running for real against the in-process Kubernetes API emulator."""

from __future__ import annotations

import pytest

from tests.e2e.scenarios import SCENARIOS, Scenario
from tests.e2e.stack import Stack


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_scenario(stack: Stack, scenario: Scenario) -> None:
    await scenario(stack)
