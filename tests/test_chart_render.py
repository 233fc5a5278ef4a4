"""The deployment artifacts: the Helm chart (charts/passops) and the Dockerfile.

Two tiers in one file:
- Always: what can be checked without a `helm` binary. The chart's CRD is the repository's, values
  hold no secret, every environment variable that `passops gateway|controller|migrate` reads is set
  by the template that runs it, the RBAC (parsed from rbac.yaml with its template expressions
  replaced by placeholders) grants every call the components make, the Dockerfile builds what
  pyproject.toml packages and runs as uid 10001.
- With `helm` (on PATH, or its path in PASSOPS_HELM): `helm lint` and checks on `helm template`
  output: the same RBAC on the real render, env and secretKeyRefs per container, security contexts,
  probes, hooks, toggles.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from typer.core import TyperGroup

import passops
from passops.cli import app
from passops.config import Settings, parse_duration
from passops.kube import PurchaseClient

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "passops"
TEMPLATES = CHART / "templates"
SECRET_NAME = "passops-credentials"

Doc = dict[str, Any]

# The command each workload runs, and the template that runs it.
WORKLOADS = {"gateway": "gateway-deployment.yaml", "controller": "controller-deployment.yaml"}
COMMAND_TEMPLATES = {**WORKLOADS, "migrate": "migration-job.yaml"}
# Credentials: only ever from the existing Secret (secretKeyRef), never a literal value.
SECRET_VARS = frozenset(
    {"PASSOPS_STRIPE_WEBHOOK_SECRETS", "PASSOPS_STRIPE_API_KEY", "PASSOPS_DATABASE_URL", "PASSOPS_API_TOKEN"}
)

# (apiGroup, resource, verb) needed by each PurchaseClient method (passops/kube.py).
Permission = tuple[str, str, str]
CLIENT_PERMISSIONS: dict[str, set[Permission]] = {
    "get": {("passops.dev", "passpurchases", "get")},
    "find": {("passops.dev", "passpurchases", "get")},
    "list": {("passops.dev", "passpurchases", "list")},
    "create": {("passops.dev", "passpurchases", "create")},
    "replace": {("passops.dev", "passpurchases", "update")},
    "patch": {("passops.dev", "passpurchases", "patch")},
    "patch_status": {("passops.dev", "passpurchases/status", "patch")},
    "delete": {("passops.dev", "passpurchases", "delete")},
    "post_event": {("", "events", "create")},
    "list_events": {("", "events", "list")},
    "crd_established": {("apiextensions.k8s.io", "customresourcedefinitions", "get")},
}
# What kopf itself needs in the controller: the watch of PassPurchases (list + watch), resource
# discovery by CRDs and the namespace observer (both degrade to a warning without, but then miss
# changes until a restart).
KOPF_PERMISSIONS: set[Permission] = {
    ("passops.dev", "passpurchases", "list"),
    ("passops.dev", "passpurchases", "watch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}
# Source packages of each component: the calls `purchases.<method>(` found there need RBAC.
COMPONENT_SOURCES = {"gateway": "webhook_gateway", "controller": "controller"}


# ---------------------------------------------------------------------------------------------
# Helpers


def cli_envvars(command: str) -> set[str]:
    """The environment variables a `passops <command>` reads (from the CLI's own definition)."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    names: set[str] = set()
    for param in group.commands[command].params:
        envvar = param.envvar
        if isinstance(envvar, str):
            names.add(envvar)
        elif envvar:
            names.update(envvar)
    return names


def client_calls(package: str) -> set[str]:
    """The PurchaseClient methods called in a package (`purchases.<method>(`)."""
    calls: set[str] = set()
    for path in (REPO / package).rglob("*.py"):
        calls.update(re.findall(r"\bpurchases\.(\w+)\(", path.read_text(encoding="utf-8")))
    return calls


def required_permissions(component: str) -> set[Permission]:
    needed: set[Permission] = set()
    for method in client_calls(COMPONENT_SOURCES[component]):
        needed |= CLIENT_PERMISSIONS[method]
    if component == "controller":
        needed |= KOPF_PERMISSIONS
    return needed


def granted_permissions(docs: list[Doc], component: str) -> set[Permission]:
    """What the bindings grant to the ServiceAccount of a component (`*-gateway` / `*-controller`)."""
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("Role", "ClusterRole")}
    granted: set[Permission] = set()
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(s["kind"] == "ServiceAccount" and component in s["name"] for s in subjects):
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        for rule in role.get("rules") or []:
            granted |= {
                (group, resource, verb)
                for group in rule.get("apiGroups", [])
                for resource in rule.get("resources", [])
                for verb in rule.get("verbs", [])
            }
    return granted


def placeholder_render(text: str, substitutions: Mapping[str, str] | None = None) -> list[Doc]:
    """Parse a template without Helm: drop lines that are only a template action (conditions, label
    includes) and turn each inline expression into a placeholder word, e.g.
    `{{ include "passops.gatewayServiceAccountName" . }}` -> `include_passops.gatewayServiceAccountName`,
    or into ``substitutions[word]`` when given (then every word must have one)."""

    def word(match: re.Match[str]) -> str:
        placeholder = re.sub(r"[^A-Za-z0-9.-]+", "_", match.group(1)).strip("_.")
        if substitutions is None:
            return placeholder
        assert placeholder in substitutions, f"no substitution for {{{{ {match.group(1)} }}}}"
        return substitutions[placeholder]

    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
            continue
        lines.append(re.sub(r"\{\{-?\s*(.*?)\s*-?\}\}", word, line))
    return [d for d in yaml.safe_load_all("\n".join(lines)) if d]


RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


def rbac_manifests(namespace: str, release: str, *, use_helm: bool | None = None) -> list[Doc]:
    """The chart's ServiceAccounts and RBAC objects for a release in ``namespace`` (default values):
    rendered by `helm template` when helm is there, else from serviceaccount.yaml and rbac.yaml with
    their expressions substituted (then without labels). ``release`` must not contain "passops"."""
    if use_helm is None:
        use_helm = helm_binary() is not None
    if use_helm:
        result = helm("template", release, str(CHART), "--namespace", namespace, "--set", "existingSecret=x")
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] in RBAC_KINDS]
    fullname = f"{release}-passops"
    substitutions = {
        "fullname": fullname,
        "purchaseNamespace": namespace,
        "Release.Namespace": namespace,
        "include_passops.gatewayServiceAccountName": f"{fullname}-gateway",
        "include_passops.controllerServiceAccountName": f"{fullname}-controller",
        "include_passops.clusterRoleName": f"{fullname}-{namespace}",
    }
    return [
        doc
        for name in ("serviceaccount.yaml", "rbac.yaml")
        for doc in placeholder_render(template_text(name), substitutions)
    ]


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from walk(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from walk(child, f"{path}[{index}]")
    else:
        yield path, value


def template_text(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Without helm


def test_chart_crd_is_the_repository_crd() -> None:
    crds = sorted(p.name for p in (CHART / "crds").iterdir())
    assert crds == ["passpurchase.yaml"]
    chart_crd = CHART / "crds" / "passpurchase.yaml"
    # A symlink (helm follows it and packages the content); a copy would have to stay identical.
    assert chart_crd.read_bytes() == (REPO / "crds" / "passpurchase.yaml").read_bytes(), (
        "charts/passops/crds/passpurchase.yaml differs from crds/passpurchase.yaml: restore the "
        "symlink (ln -sf ../../../crds/passpurchase.yaml charts/passops/crds/passpurchase.yaml)"
    )
    assert yaml.safe_load(chart_crd.read_text())["metadata"]["name"] == "passpurchases.passops.dev"


def test_chart_versions_match_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "passops"
    assert chart["appVersion"] == project["version"] == passops.__version__


SECRET_LOOKING = re.compile(
    r"whsec_|sk_(live|test)_|rk_(live|test)_|pk_(live|test)_|postgres(ql)?(\+\w+)?://[^/\s]*:[^@\s]*@",
    re.IGNORECASE,
)
SECRET_KEY_NAME = re.compile(r"secret|token|password|apikey|api_key|databaseurl|dsn", re.IGNORECASE)


@pytest.mark.parametrize("values_file", ["values.yaml", "ci/default-values.yaml"])
def test_values_hold_no_secret_values(values_file: str) -> None:
    values = yaml.safe_load((CHART / values_file).read_text())
    for path, value in walk(values):
        assert not (isinstance(value, str) and SECRET_LOOKING.search(value)), f"{path} holds a secret"
        leaf = path.rsplit(".", 1)[-1]
        if path.startswith("secretKeys."):
            # Names of keys inside the existing Secret, not their values.
            assert isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", value), path
        elif path == "existingSecret":
            assert value in ("", SECRET_NAME), "existingSecret names a Secret; it holds no value"
        elif SECRET_KEY_NAME.search(leaf) and not path.startswith(("serviceAccount.", "metrics.")):
            raise AssertionError(f"{path}: credentials belong in the existing Secret, not in values")
    if values_file == "values.yaml":
        assert set(values["secretKeys"].values()) == SECRET_VARS


def test_credentials_come_only_from_the_existing_secret() -> None:
    for template in TEMPLATES.glob("*.yaml"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"^kind:\s*(Secret|ConfigMap)\b", text, re.MULTILINE), (
            f"{template.name} renders a Secret or ConfigMap: credentials come from existingSecret"
        )
        for line in text.splitlines():
            for var in SECRET_VARS & set(re.findall(r"PASSOPS_\w+", line)):
                assert 'include "passops.secretEnv"' in line, f"{template.name}: {var} not via secretKeyRef"
    helper = template_text("_helpers.tpl")
    assert "secretKeyRef:" in helper and 'include "passops.secretName"' in helper


@pytest.mark.parametrize("command", sorted(COMMAND_TEMPLATES))
def test_every_env_var_the_cli_reads_is_set(command: str) -> None:
    text = template_text(COMMAND_TEMPLATES[command])
    assert re.search(rf"args:\s*\n\s*- {command}\b", text), f"{COMMAND_TEMPLATES[command]} runs {command}"
    envvars = cli_envvars(command)
    assert envvars, f"passops {command} reads no environment variable?"
    missing = {var for var in envvars if not re.search(rf"(name: |\"){var}\b", text)}
    assert not missing, f"{COMMAND_TEMPLATES[command]} does not set {sorted(missing)}"


def test_tuning_defaults_are_the_code_defaults() -> None:
    """The chart sets every knob explicitly, so its defaults must be the ones the code documents."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    controller, defaults = values["controller"], Settings()
    assert parse_duration(controller["backoffBase"]) == defaults.backoff.base
    assert parse_duration(controller["backoffCap"]) == defaults.backoff.cap
    assert parse_duration(controller["stalledAfter"]) == defaults.stalled_after
    assert parse_duration(controller["recheckInterval"]) == defaults.recheck_interval
    assert parse_duration(controller["retention"]) == defaults.retention
    assert parse_duration(controller["syncPeriod"]) == defaults.sync_period
    assert controller["workers"] == defaults.workers
    assert values["defaultTenant"] == defaults.default_tenant
    assert values["userPolicy"] == defaults.user_policy.value
    assert values["stripeApiBase"] == defaults.stripe_api_base
    assert values["gateway"]["port"] == defaults.gateway_port
    assert values["controller"]["metricsPort"] == defaults.metrics_port


def test_pods_are_locked_down_by_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["podSecurityContext"]["runAsUser"] == 10001
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for name in COMMAND_TEMPLATES.values():
        text = template_text(name)
        assert "toYaml .Values.podSecurityContext" in text and "toYaml .Values.securityContext" in text
    controller = template_text(COMMAND_TEMPLATES["controller"])
    assert re.search(r"replicas: 1\n\s*strategy:\n\s*type: Recreate", controller)


def test_rbac_map_knows_every_client_method() -> None:
    methods = {
        name for name, member in vars(PurchaseClient).items() if not name.startswith("_") and callable(member)
    }
    unknown = methods - CLIENT_PERMISSIONS.keys()
    assert not unknown, f"map the new PurchaseClient methods {sorted(unknown)} to RBAC verbs in this test"
    for component, package in COMPONENT_SOURCES.items():
        assert client_calls(package), f"found no PassPurchase call in {package}/ ({component})"


@pytest.mark.parametrize("component", sorted(COMPONENT_SOURCES))
def test_rbac_covers_what_the_components_call(component: str) -> None:
    docs = placeholder_render(template_text("rbac.yaml"))
    missing = required_permissions(component) - granted_permissions(docs, component)
    assert not missing, f"the {component} lacks {sorted(missing)}"
    if component == "gateway":
        # The internet-facing component never deletes nor writes status.
        granted = granted_permissions(docs, component)
        assert not {p for p in granted if p[2] == "delete" or p[1].endswith("/status")}


def _dockerfile() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [
        (m.group(1).upper(), m.group(2).strip())
        for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.MULTILINE)
        if not m.group(0).lstrip().startswith("#")
    ]


def test_dockerfile_copies_every_packaged_source() -> None:
    instructions = _dockerfile()
    copied = {src.rstrip("/") for op, args in instructions if op == "COPY" for src in args.split()[:-1]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"the build stage misses {sorted(packages - copied)}"
    # passops/crds is a symlink to ../crds: the target must be in the build context too.
    assert (REPO / "passops" / "crds").resolve() == (REPO / "crds").resolve()
    assert {"crds", "pyproject.toml", project["project"]["readme"]} <= copied
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    for source in copied:
        assert f"!{source}" in ignored or f"!{source}/" in ignored, f".dockerignore drops {source}"
    assert "*" in ignored, ".dockerignore is an allow-list"


def test_dockerfile_runs_passops_as_uid_10001() -> None:
    instructions = _dockerfile()
    froms = [args for op, args in instructions if op == "FROM"]
    assert len(froms) >= 2 and "AS" in froms[0].upper(), "multi-stage: a build stage, then the runtime"
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    assert ("ENTRYPOINT", '["passops"]') in final
    assert ("CMD", '["controller"]') in final
    for op, args in instructions:
        if op in ("ENV", "ARG"):
            assert not SECRET_LOOKING.search(args)
            assert not re.search(r"PASSOPS_(STRIPE|DATABASE|API_TOKEN)", args), f"{op} {args}: no secrets"


# ---------------------------------------------------------------------------------------------
# With helm


def helm_binary() -> str | None:
    return os.environ.get("PASSOPS_HELM") or shutil.which("helm")


needs_helm = pytest.mark.skipif(
    helm_binary() is None, reason="no `helm` binary (not on PATH and PASSOPS_HELM unset)"
)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = helm_binary()
    assert binary is not None
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


@functools.cache
def render(*sets: str, namespace: str = "shop") -> tuple[Doc, ...]:
    args = ["template", "pp", str(CHART), "--namespace", namespace, "--set", f"existingSecret={SECRET_NAME}"]
    for value in sets:
        args += ["--set", value]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def one(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env") or []}


@needs_helm
def test_helm_lint() -> None:
    result = helm("lint", "--strict", str(CHART), "--values", str(CHART / "ci" / "default-values.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
def test_install_without_existing_secret_fails_with_a_clear_message() -> None:
    result = helm("template", "pp", str(CHART))
    assert result.returncode != 0
    assert "existingSecret is required" in result.stderr


@needs_helm
def test_rendered_objects_and_labels() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    for kind in ("ClusterRole", "ClusterRoleBinding", "Job", "PodDisruptionBudget", "Role", "RoleBinding"):
        assert kind in kinds
    assert kinds.count("Deployment") == 2 and kinds.count("Service") == 2
    assert kinds.count("ServiceAccount") == 2
    assert "Secret" not in kinds and "ConfigMap" not in kinds and "ServiceMonitor" not in kinds
    assert "CustomResourceDefinition" not in kinds, "the CRD is in crds/, not a template"
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "passops"
        assert labels["app.kubernetes.io/instance"] == "pp"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "shop"


@needs_helm
@pytest.mark.parametrize("command", sorted(COMMAND_TEMPLATES))
def test_rendered_containers_run_passops_with_its_environment(command: str) -> None:
    docs = render()
    kind, name = (
        ("Job", "pp-passops-migrate") if command == "migrate" else ("Deployment", f"pp-passops-{command}")
    )
    (container,) = pod_spec(one(docs, kind, name))["containers"]
    assert container["command"] == ["passops"] and container["args"] == [command]
    env = env_of(container)
    assert cli_envvars(command) <= env.keys()
    for var in cli_envvars(command):
        if var in SECRET_VARS:
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET_NAME and ref["key"] == var and "value" not in env[var]
        else:
            assert isinstance(env[var]["value"], str)
    if "PASSOPS_NAMESPACE" in env:
        assert env["PASSOPS_NAMESPACE"]["value"] == "shop"
    # Only the credentials the command needs (the gateway holds no database URL).
    assert {v for v in env if v in SECRET_VARS} == cli_envvars(command) & SECRET_VARS


@needs_helm
def test_rendered_pods_are_locked_down() -> None:
    docs = render()
    pods = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert len(pods) == 3
    for doc in pods:
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
            assert container["image"] == "passops:0.1.0"
    assert pod_spec(one(docs, "Job", "pp-passops-migrate"))["automountServiceAccountToken"] is False


@needs_helm
def test_rendered_workloads() -> None:
    docs = render()
    gateway = one(docs, "Deployment", "pp-passops-gateway")
    assert gateway["spec"]["replicas"] == 2
    (container,) = pod_spec(gateway)["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert env_of(container)["PASSOPS_GATEWAY_PORT"]["value"] == "8080"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod_spec(gateway)["serviceAccountName"] == "pp-passops-gateway"
    service = one(docs, "Service", "pp-passops-gateway")
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    controller = one(docs, "Deployment", "pp-passops-controller")
    assert controller["spec"]["replicas"] == 1 and controller["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = pod_spec(controller)["containers"]
    assert container["ports"][0]["containerPort"] == 9090
    assert env_of(container)["PASSOPS_METRICS_PORT"]["value"] == "9090"
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    metrics = one(docs, "Service", "pp-passops-controller-metrics")
    assert metrics["spec"]["ports"][0] == {
        "name": "metrics",
        "port": 9090,
        "targetPort": "metrics",
        "protocol": "TCP",
    }

    job = one(docs, "Job", "pp-passops-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert pod_spec(job)["restartPolicy"] == "Never"


@needs_helm
@pytest.mark.parametrize("component", sorted(COMPONENT_SOURCES))
def test_rendered_rbac_covers_what_the_components_call(component: str) -> None:
    docs = list(render())
    missing = required_permissions(component) - granted_permissions(docs, component)
    assert not missing, f"the {component} lacks {sorted(missing)}"
    deployment = one(render(), "Deployment", f"pp-passops-{component}")
    account = pod_spec(deployment)["serviceAccountName"]
    assert any(d["kind"] == "ServiceAccount" and d["metadata"]["name"] == account for d in docs)


@needs_helm
def test_purchases_in_another_namespace() -> None:
    docs = render("purchaseNamespace=purchases")
    for name in ("pp-passops-gateway", "pp-passops-controller"):
        assert one(docs, "Role", name)["metadata"]["namespace"] == "purchases"
        binding = one(docs, "RoleBinding", name)
        assert binding["metadata"]["namespace"] == "purchases"
        assert binding["subjects"][0]["namespace"] == "shop"
        (container,) = pod_spec(one(docs, "Deployment", name))["containers"]
        assert env_of(container)["PASSOPS_NAMESPACE"]["value"] == "purchases"


@needs_helm
def test_values_reach_the_containers() -> None:
    docs = render(
        "userPolicy=wait",
        "stripeApiBase=http://stripe-fake:12111",
        "gateway.port=8081",
        "verbose=true",
        "controller.retention=0",
        "defaultTenant=shop-eu",
    )
    (gateway,) = pod_spec(one(docs, "Deployment", "pp-passops-gateway"))["containers"]
    (controller,) = pod_spec(one(docs, "Deployment", "pp-passops-controller"))["containers"]
    assert env_of(controller)["PASSOPS_USER_POLICY"]["value"] == "wait"
    assert env_of(controller)["PASSOPS_RETENTION"]["value"] == "0"
    assert env_of(controller)["PASSOPS_DEFAULT_TENANT"]["value"] == "shop-eu"
    assert env_of(gateway)["PASSOPS_DEFAULT_TENANT"]["value"] == "shop-eu"
    assert env_of(gateway)["PASSOPS_STRIPE_API_BASE"]["value"] == "http://stripe-fake:12111"
    assert env_of(gateway)["PASSOPS_GATEWAY_PORT"]["value"] == "8081"
    assert gateway["ports"][0]["containerPort"] == 8081
    assert gateway["args"] == ["gateway", "--verbose"] and controller["args"] == ["controller", "--verbose"]


@needs_helm
def test_service_monitors_are_optional() -> None:
    docs = render("metrics.serviceMonitor.enabled=true")
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    assert monitors.keys() == {"pp-passops-gateway", "pp-passops-controller"}
    assert monitors["pp-passops-controller"]["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitors["pp-passops-gateway"]["spec"]["endpoints"][0]["port"] == "http"
    for monitor in monitors.values():
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [
            d for d in docs if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
        ]
        assert len(services) == 1


@needs_helm
def test_rbac_without_helm_matches_helm() -> None:
    """The helm-free rendering of the RBAC (used where helm is missing) is faithful."""

    def essentials(docs: list[Doc]) -> list[Doc]:
        return sorted(
            (
                {k: v for k, v in d.items() if k != "metadata"}
                | {"name": d["metadata"]["name"], "namespace": d["metadata"].get("namespace")}
                for d in docs
            ),
            key=lambda d: (d["kind"], d["name"]),
        )

    with_helm = rbac_manifests("shop", "rbac", use_helm=True)
    without = rbac_manifests("shop", "rbac", use_helm=False)
    assert len(with_helm) == 8
    assert essentials(with_helm) == essentials(without)


@needs_helm
def test_crds_are_rendered_with_include_crds() -> None:
    result = helm("template", "pp", str(CHART), "--set", f"existingSecret={SECRET_NAME}", "--include-crds")
    assert result.returncode == 0, result.stderr
    crds = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "CustomResourceDefinition"]
    assert crds == [yaml.safe_load((REPO / "crds" / "passpurchase.yaml").read_text())]
