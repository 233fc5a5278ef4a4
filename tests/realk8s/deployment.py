"""A passops deployment on the real API: its own database, namespace, gateway and controller."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

from controller.db import upgrade
from passops.testing import stripe_events as se
from passops.testing.postgres import create_database, drop_database
from passops.testing.realk8s import RealCluster
from tests.realk8s.processes import Process, free_port, passops_process, wait_http_ok


class Deployed:
    def __init__(
        self, cluster: RealCluster, namespace: str, database_url: str, logs: Path, env: dict[str, str]
    ):
        self.cluster = cluster
        self.namespace = namespace
        self.database_url = database_url
        self.logs = logs
        self.env = env
        self.secret = env["PASSOPS_STRIPE_WEBHOOK_SECRETS"]
        self.gateway_url = f"http://127.0.0.1:{env['PASSOPS_GATEWAY_PORT']}"
        self.metrics_url = f"http://127.0.0.1:{env['PASSOPS_METRICS_PORT']}/metrics"
        self.processes: dict[str, Process] = {}
        self._stack = contextlib.ExitStack()

    def start_controller(self) -> Process:
        controller = self._stack.enter_context(passops_process("controller", self.env, self.logs))
        self.processes["controller"] = controller
        wait_http_ok(self.metrics_url, controller)
        return controller

    def start_gateway(self) -> Process:
        gateway = self._stack.enter_context(
            passops_process("gateway", self.env, self.logs, "--host", "127.0.0.1")
        )
        self.processes["gateway"] = gateway
        wait_http_ok(f"{self.gateway_url}/readyz", gateway)
        return gateway

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"passops_realk8s_{uuid.uuid4().hex[:8]}"
    url = create_database(server_url, name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(server_url, name)


@contextlib.contextmanager
def deploy(
    cluster: RealCluster, database_url: str, logs: Path, *, namespace: str | None = None, **settings: str
) -> Iterator[Deployed]:
    """Gateway and controller as processes; ``settings`` are extra PASSOPS_* variables."""
    if namespace is not None and namespace != cluster.namespace:
        cluster.kubectl("create", "namespace", namespace)
    env = {
        "KUBECONFIG": str(cluster.kubeconfig),
        "PASSOPS_NAMESPACE": namespace or cluster.namespace,
        "PASSOPS_DATABASE_URL": database_url,
        "PASSOPS_STRIPE_WEBHOOK_SECRETS": se.webhook_secret(),
        "PASSOPS_GATEWAY_PORT": str(free_port()),
        "PASSOPS_METRICS_PORT": str(free_port()),
        **settings,
    }
    deployed = Deployed(cluster, env["PASSOPS_NAMESPACE"], database_url, logs, env)
    try:
        deployed.start_controller()
        deployed.start_gateway()
        yield deployed
    finally:
        deployed.close()
