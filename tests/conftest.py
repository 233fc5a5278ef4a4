"""Shared fixtures live in tests/fixtures/, one module per real part they start."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.kube",
    "tests.fixtures.stack",
    "tests.fixtures.stripe",
    "tests.fixtures.fake_stripe",
    "tests.fixtures.sync_gateway",
    "tests.fixtures.realk8s",
]
