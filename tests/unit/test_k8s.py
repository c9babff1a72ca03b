"""deploy/k8s: every overlay renders offline, validates against its schemas, agrees with the code.

No cluster is needed. kustomize (built into kubectl) renders each overlay; every rendered
document is validated against the Kubernetes OpenAPI schema of KUBERNETES_VERSIONS in
strict mode (an unknown field is an error) by kubernetes-validate; the operators' kinds
(RabbitmqCluster, CloudNativePG's Cluster) against deploy/k8s/schemas/, which are
hand-written (see the README there). Then the manifests are checked against Settings and
the services' definitions, the way test_compose.py checks docker-compose.yml.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import kubernetes_validate.utils as kv  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from referencing import Registry, Resource

from libs.db.pool import create_pool
from libs.observability.metrics import QUEUE_MESSAGES
from libs.settings import SERVICE_NAMES, Settings
from services.cli.service_registry import definition

Manifest = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS_DIR = K8S / "overlays"
SCHEMAS_DIR = K8S / "schemas"
README = K8S / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
DEV_DEFINITIONS = OVERLAYS_DIR / "dev" / "rabbitmq-definitions.json"
BROKER_DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"

OVERLAYS = sorted(p.name for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").is_file())
# Overlays that must survive node drains and load: PDBs, HPAs, 3 broker nodes, 3 databases.
HA_OVERLAYS = [name for name in OVERLAYS if name.startswith("production")]
# The oldest Kubernetes these manifests target, and the version of the kubectl CI renders with.
KUBERNETES_VERSIONS = ("1.30.0", "1.32.0")
K8S_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"

APPS: tuple[str, ...] = (*SERVICE_NAMES, "console")
# Secrets the manifests use but no overlay makes for production: README says how to create them.
EXTERNAL_SECRETS = ("lockgate-amqp-urls", "lockgate-console", "lockgate-rabbitmq-definitions")
OPERATOR_SECRETS = ("lockgate-postgres-app",)  # made by CloudNativePG from bootstrap.initdb
RABBITMQ_CLUSTER = "lockgate-rabbitmq"
POSTGRES_CLUSTER = "lockgate-postgres"
# PostgreSQL connections a process holds beyond its pool: outbox listener, readiness, migration.
EXTRA_CONNECTIONS = 3
RESERVED_CONNECTIONS = 20  # superuser, replication, the operator, `kubectl cnpg psql`...

ENV_VAR = re.compile(r"\bLOCKGATE_[A-Z0-9_]+\b")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what the services must listen on inside a pod


# --- rendering ---------------------------------------------------------------------------


@functools.cache
def _kustomize() -> tuple[str, ...]:
    """kubectl's built-in kustomize, else a standalone kustomize; CI must have one of them."""
    if kubectl := shutil.which("kubectl"):
        return (kubectl, "kustomize")
    if kustomize := shutil.which("kustomize"):
        return (kustomize, "build")
    pytest.fail(
        "deploy/k8s is validated offline by rendering it with kustomize, and neither `kubectl` "
        "(which has kustomize built in: `kubectl kustomize`) nor `kustomize` is on PATH. "
        "Install kubectl (1.27 or later) from the Kubernetes packages for your OS, e.g. "
        "`apt-get install kubectl` with the Kubernetes apt repository configured, or a "
        "standalone kustomize v5 binary; this project's machines have kubectl in their image."
    )


@functools.cache
def _rendered(overlay: str) -> tuple[Manifest, ...]:
    command = [*_kustomize(), str(OVERLAYS_DIR / overlay)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` failed:\n{result.stderr}")
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert all(isinstance(doc, dict) for doc in docs)
    return tuple(cast("list[Manifest]", docs))


def _of_kind(overlay: str, kind: str) -> list[Manifest]:
    return [doc for doc in _rendered(overlay) if doc["kind"] == kind]


def _one(overlay: str, kind: str, name: str) -> Manifest:
    found = [doc for doc in _of_kind(overlay, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def _deployment(overlay: str, app: str) -> Manifest:
    return _one(overlay, "Deployment", f"lockgate-{app}")


def _container(workload: Manifest) -> Manifest:
    containers = cast("list[Manifest]", workload["spec"]["template"]["spec"]["containers"])
    assert len(containers) == 1, f"{workload['metadata']['name']}: one container expected"
    return containers[0]


def _workloads(overlay: str) -> list[Manifest]:
    return _of_kind(overlay, "Deployment") + _of_kind(overlay, "Job")


def _env(overlay: str, container: Manifest) -> dict[str, Any]:
    """Name -> value, or -> the valueFrom mapping, with envFrom ConfigMaps resolved."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "only ConfigMaps are read with envFrom (names show)"
        env.update(_one(overlay, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


def _port_var(app: str) -> str:
    return "LOCKGATE_CONSOLE_PORT" if app == "console" else f"LOCKGATE_{app.upper()}_HTTP_PORT"


def _settings_port(app: str) -> int:
    field = "console_port" if app == "console" else f"{app}_http_port"
    return int(Settings.model_fields[field].default)


def _named_port(container: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    assert port in ports, f"container {container['name']} has no port named {port!r}"
    return int(ports[port])


def _secret_names(overlay: str) -> set[str]:
    """The Secret of every secretKeyRef and Secret volume rendered, CRDs' fields included."""
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("secretKeyRef"), dict):
                names.add(node["secretKeyRef"]["name"])
            if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
                names.add(node["secret"]["secretName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(list(_rendered(overlay)))
    return names


def _generated_secret(overlay: str, base_name: str) -> Manifest | None:
    """A Secret the overlay generates, found by its name before kustomize's hash suffix."""
    found = [
        doc
        for doc in _of_kind(overlay, "Secret")
        if re.fullmatch(rf"{re.escape(base_name)}(-[a-z0-9]{{10}})?", doc["metadata"]["name"])
    ]
    assert len(found) <= 1
    return found[0] if found else None


def _secret_data(secret: Manifest) -> dict[str, str]:
    data = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
    return data | dict(secret.get("stringData", {}))


# --- schemas -----------------------------------------------------------------------------


@functools.cache
def _k8s_definitions(k8s_version: str) -> Registry[Any]:
    """Kubernetes' strict definitions (every schema $refs them), parsed once per version."""
    assert k8s_version in kv.all_versions(), f"kubernetes-validate lacks {k8s_version}"
    definitions = kv.schema_contents(
        f"kubernetes-json-schema/v{k8s_version}-local-strict/_definitions.json", k8s_version
    )
    registry: Registry[Any] = Registry().with_resource(
        K8S_DEFINITIONS_ID, Resource.from_contents(definitions)
    )
    return registry


@functools.cache
def _validator(api_version: str, kind: str, k8s_version: str) -> tuple[Any, str] | None:
    """(validator, where its schema is from) for one kind, or None when there is no schema.

    Built-in kinds: kubernetes-validate's strict schema, found as kubernetes_validate.validate
    finds it, but built once per kind rather than once per document (10x faster). Custom
    resources: deploy/k8s/schemas/<kind>-<group>-<version>.json.
    """
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv.schema_contents(
            f"kubernetes-json-schema/v{k8s_version}-local-strict/"
            f"{kind.lower()}-{group_version}.json",
            k8s_version,
        )
        source = f"Kubernetes {k8s_version}"
    except FileNotFoundError:
        path = SCHEMAS_DIR / f"{kind.lower()}-{api_version.replace('/', '-')}.json"
        if not path.is_file():
            return None
        schema = json.loads(path.read_text())
        source = f"deploy/k8s/schemas/{path.name}"
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_k8s_definitions(k8s_version)), source


def _schema_errors(doc: Manifest, k8s_version: str) -> list[str]:
    where = f"{doc['kind']} {doc['metadata'].get('name')}"
    found = _validator(doc["apiVersion"], doc["kind"], k8s_version)
    if found is None:
        return [f"{where}: no schema for {doc['apiVersion']} {doc['kind']} (add one)"]
    validator, source = found
    return [
        f"{where} ({source}): {'.'.join(str(part) for part in error.path)}: {error.message}"
        for error in validator.iter_errors(doc)
    ]


# --- the tests ---------------------------------------------------------------------------


def test_overlays_exist() -> None:
    assert {"dev", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_uniquely_named_namespaced_objects(overlay: str) -> None:
    docs = _rendered(overlay)
    keys = [(doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) for doc in docs]
    assert len(keys) == len(set(keys)), "two rendered objects share kind and name"
    namespaces = {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"}
    [namespace] = [doc["metadata"]["name"] for doc in _of_kind(overlay, "Namespace")]
    assert namespaces == {namespace}, "every object belongs in the overlay's namespace"


@pytest.mark.parametrize("k8s_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_matches_its_schema(overlay: str, k8s_version: str) -> None:
    """Strict: a misspelt or misplaced field is an error, as the API server would make it."""
    errors = [error for doc in _rendered(overlay) for error in _schema_errors(doc, k8s_version)]
    assert errors == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_resources_are_validated_by_our_schemas(overlay: str) -> None:
    """The CRD kinds have a schema here, which rejects what it does not know."""
    kinds = {(doc["apiVersion"], doc["kind"]) for doc in _rendered(overlay)}
    operators = {("rabbitmq.com/v1beta1", "RabbitmqCluster"), ("postgresql.cnpg.io/v1", "Cluster")}
    assert operators <= kinds
    cluster = _one(overlay, "Cluster", POSTGRES_CLUSTER)
    typo = {**cluster, "spec": {**cluster["spec"], "instance": 3}}
    assert _schema_errors(typo, KUBERNETES_VERSIONS[-1]), "the Cluster schema accepts a typo"
    rabbit = _one(overlay, "RabbitmqCluster", RABBITMQ_CLUSTER)
    wrong = {**rabbit, "spec": {**rabbit["spec"], "replicas": "3"}}
    assert _schema_errors(wrong, KUBERNETES_VERSIONS[-1]), "RabbitmqCluster takes a bad type"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_deployment(overlay: str) -> None:
    """Each process the code knows runs, and nothing else calls itself part of Lockgate."""
    names = {
        doc["metadata"]["name"]
        for doc in _of_kind(overlay, "Deployment")
        if doc["metadata"]["labels"].get("app.kubernetes.io/part-of") == "lockgate"
    }
    assert names == {f"lockgate-{app}" for app in APPS}


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_runs_its_module_on_the_settings_port(overlay: str, app: str) -> None:
    """Container port, port variable, probes, Service and scrape annotation: one number."""
    deployment = _deployment(overlay, app)
    container = _container(deployment)
    port = _settings_port(app)
    assert container["command"] == ["python", "-m", f"services.{app}"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", port)]
    assert _env(overlay, container)[_port_var(app)] == str(port)
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        get = container[probe]["httpGet"]
        assert (get["path"], _named_port(container, get["port"])) == (path, port), probe
    service = _one(overlay, "Service", f"lockgate-{app}")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    [service_port] = service["spec"]["ports"]
    assert _named_port(container, service_port["targetPort"]) == port
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_lockgate_env_vars_are_settings_fields(overlay: str) -> None:
    """A misspelt LOCKGATE_* variable is silently ignored (extra="ignore"), so catch it here."""
    fields = {f"LOCKGATE_{field.upper()}" for field in Settings.model_fields}
    text = yaml.safe_dump_all(_rendered(overlay))
    used = set(ENV_VAR.findall(text))
    for workload in _workloads(overlay):
        names = set(_env(overlay, _container(workload)))
        assert names <= fields, f"{workload['metadata']['name']}: {sorted(names - fields)}"
        used |= names
    assert used, "no LOCKGATE_* variable is set"
    assert used <= fields, f"not Settings fields: {sorted(used - fields)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_processes_listen_on_all_interfaces_and_use_their_own_credentials(overlay: str) -> None:
    """127.0.0.1 is unreachable by probes; each service logs in to RabbitMQ as itself."""
    for app in APPS:
        env = _env(overlay, _container(_deployment(overlay, app)))
        assert env["LOCKGATE_HTTP_HOST"] == ALL_INTERFACES, app
        amqp = env["LOCKGATE_AMQP_URL"]["secretKeyRef"]
        assert (re.sub(r"-[a-z0-9]{10}$", "", amqp["name"]), amqp["key"]) == (
            "lockgate-amqp-urls",
            app,
        )
        database = env["LOCKGATE_DATABASE_URL"]["secretKeyRef"]
        assert (database["name"], database["key"]) == (f"{POSTGRES_CLUSTER}-app", "uri")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shutdown_grace_fits_in_termination_grace(overlay: str) -> None:
    """SIGKILL must not cut the drain (LOCKGATE_SHUTDOWN_GRACE_SECONDS) or the preStop pause."""
    shutdown = float(Settings.model_fields["shutdown_grace_seconds"].default)
    for app in APPS:
        deployment = _deployment(overlay, app)
        container = _container(deployment)
        configured = _env(overlay, container).get("LOCKGATE_SHUTDOWN_GRACE_SECONDS")
        grace = float(configured) if configured is not None else shutdown
        pre_stop = container.get("lifecycle", {}).get("preStop", {})
        command = pre_stop.get("exec", {}).get("command", [])
        pause = float(command[1]) if command[:1] == ["sleep"] else 0.0
        pause += float(pre_stop.get("sleep", {}).get("seconds", 0))
        termination = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert termination > grace + pause, app


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_hardening(overlay: str) -> None:
    """Requests and limits, probes, and the image's own unprivileged user."""
    image_user = re.search(r"useradd [^\n]*--uid (\d+)", DOCKERFILE.read_text())
    assert image_user is not None, "the Dockerfile no longer creates a user with --uid"
    for workload in _workloads(overlay):
        name = workload["metadata"]["name"]
        container = _container(workload)
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{name}: {bound}"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        pod_security = workload["spec"]["template"]["spec"]["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["runAsUser"] == int(image_user.group(1)), name
        if workload["kind"] == "Deployment":
            assert {"livenessProbe", "readinessProbe"} <= set(container), name


@pytest.mark.parametrize("overlay", HA_OVERLAYS)
def test_production_has_pdb_and_hpa_for_every_deployment(overlay: str) -> None:
    """Two replicas or more, a drain never takes the last one, and load adds more."""
    for app in APPS:
        deployment = _deployment(overlay, app)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        # The HPA owns `replicas`: a value here would reset the scale on every apply.
        assert "replicas" not in deployment["spec"], app
        [pdb] = [
            doc
            for doc in _of_kind(overlay, "PodDisruptionBudget")
            if doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert pdb["spec"]["minAvailable"] == 1, app
        [hpa] = [
            doc
            for doc in _of_kind(overlay, "HorizontalPodAutoscaler")
            if doc["spec"]["scaleTargetRef"]
            == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"lockgate-{app}"}
        ]
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"], app
        resources = [m["resource"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
        assert "cpu" in [resource["name"] for resource in resources], f"{app}: no CPU metric"
    assert _one(overlay, "RabbitmqCluster", RABBITMQ_CLUSTER)["spec"]["replicas"] == 3
    assert _one(overlay, "Cluster", POSTGRES_CLUSTER)["spec"]["instances"] == 3


def test_dev_runs_one_replica_without_autoscaling() -> None:
    for app in APPS:
        assert _deployment("dev", app)["spec"]["replicas"] == 1
    assert _of_kind("dev", "HorizontalPodAutoscaler") == []
    lockgate_pdbs = [
        doc
        for doc in _of_kind("dev", "PodDisruptionBudget")
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "lockgate"
    ]
    assert lockgate_pdbs == [], "with one replica, minAvailable 1 would block every drain"


def test_queue_depth_autoscaling_covers_each_services_queues() -> None:
    """The External metric sums exactly the service's own queues (not their .dlq)."""
    [metric_name] = [family.name for family in QUEUE_MESSAGES.describe()]
    overlay = "production-queue-autoscaling"
    for service in SERVICE_NAMES:
        hpa = _one(overlay, "HorizontalPodAutoscaler", f"lockgate-{service}")
        [external] = [m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External"]
        assert external["metric"]["name"] == metric_name
        [expression] = external["metric"]["selector"]["matchExpressions"]
        assert (expression["key"], expression["operator"]) == ("queue", "In")
        assert sorted(expression["values"]) == sorted(definition(service).queues()), service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_admits_every_connection_at_full_scale(overlay: str) -> None:
    """No PgBouncer (LISTEN/NOTIFY, advisory locks): every replica connects directly."""
    pool = int(inspect.signature(create_pool).parameters["max_size"].default)
    hpas = {
        doc["spec"]["scaleTargetRef"]["name"]: doc["spec"]["maxReplicas"]
        for doc in _of_kind(overlay, "HorizontalPodAutoscaler")
    }
    replicas = sum(
        hpas.get(f"lockgate-{app}", _deployment(overlay, app)["spec"].get("replicas", 1))
        for app in APPS
    )
    needed = replicas * (pool + EXTRA_CONNECTIONS) + RESERVED_CONNECTIONS
    parameters = _one(overlay, "Cluster", POSTGRES_CLUSTER)["spec"]["postgresql"]["parameters"]
    assert int(parameters["max_connections"]) >= needed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_generated_or_documented(overlay: str) -> None:
    """Every Secret used is made by the overlay, by CloudNativePG, or by you (README)."""
    readme = README.read_text()
    for name in _secret_names(overlay):
        if _generated_secret(overlay, re.sub(r"-[a-z0-9]{10}$", "", name)) is not None:
            continue
        assert name in EXTERNAL_SECRETS + OPERATOR_SECRETS, f"{name}: who makes this Secret?"
        assert name in readme, f"deploy/k8s/README.md does not say how to create {name}"
    assert f"{POSTGRES_CLUSTER}-app" in readme


def test_dev_generates_every_secret_it_needs() -> None:
    """dev applies as it is: only CloudNativePG's Secret is left to the operator."""
    for name in EXTERNAL_SECRETS:
        assert _generated_secret("dev", name) is not None, name
    override = _one("dev", "RabbitmqCluster", RABBITMQ_CLUSTER)["spec"]["override"]
    volumes = override["statefulSet"]["spec"]["template"]["spec"]["volumes"]
    expected = {
        "name": "lockgate-definitions",
        "secret": {"secretName": "lockgate-rabbitmq-definitions"},
    }
    assert expected in volumes, "kustomize cannot rename a Secret in a RabbitmqCluster: no hash"


def _password_matches(password: str, password_hash: str) -> bool:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt[4] + sha256(salt + password))."""
    raw = base64.b64decode(password_hash)
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


def test_dev_definitions_are_the_committed_ones_with_dev_passwords() -> None:
    """Users, vhost, exchanges and permissions come from the code (`lockgate broker
    definitions`); dev only adds password hashes, so a regenerated file must be copied here."""
    dev = json.loads(DEV_DEFINITIONS.read_text())
    for user in dev["users"]:
        assert user["password_hash"], f"{user['name']} has no password in the dev definitions"
        user["password_hash"] = ""
    assert dev == json.loads(BROKER_DEFINITIONS.read_text()), (
        "deploy/k8s/overlays/dev/rabbitmq-definitions.json differs from "
        "deploy/rabbitmq/definitions.json: regenerate it as its kustomization.yaml says"
    )


def test_dev_broker_urls_match_the_dev_definitions() -> None:
    """Each service's URL logs in as lockgate-<service>, whose hash is in the definitions."""
    secret = _generated_secret("dev", "lockgate-amqp-urls")
    assert secret is not None
    urls = _secret_data(secret)
    assert set(urls) == set(APPS)
    definitions = json.loads(DEV_DEFINITIONS.read_text())
    users = {user["name"]: user for user in definitions["users"]}
    [vhost] = [v["name"] for v in definitions["vhosts"]]
    permitted = {(p["user"], p["vhost"]) for p in definitions["permissions"]}
    for app, url in urls.items():
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) == ("amqp", RABBITMQ_CLUSTER, 5672)
        assert parts.path == f"/{vhost}", f"{app}: not the definitions' vhost"
        assert parts.username == f"lockgate-{app}", app
        assert parts.password is not None
        assert "not-a-secret" in parts.password, "dev placeholders must look like placeholders"
        user = users[parts.username]
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert _password_matches(parts.password, user["password_hash"]), app
        assert (parts.username, vhost) in permitted, app


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_allow_what_lockgate_needs(overlay: str) -> None:
    policies = {doc["metadata"]["name"]: doc["spec"] for doc in _of_kind(overlay, "NetworkPolicy")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny
    assert "egress" not in deny
    dns = policies["allow-dns"]
    assert dns["podSelector"] == {}
    assert {(p["protocol"], p["port"]) for p in dns["egress"][0]["ports"]} == {
        ("UDP", 53),
        ("TCP", 53),
    }
    app_pods = {"app.kubernetes.io/part-of": "lockgate"}
    egress = policies["lockgate-egress"]
    assert egress["podSelector"] == {"matchLabels": app_pods}
    allowed = {
        (json.dumps(rule["to"], sort_keys=True), port["port"])
        for rule in egress["egress"]
        for port in rule["ports"]
    }
    rabbitmq_pods = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": RABBITMQ_CLUSTER}}}]
    postgres_pods = [{"podSelector": {"matchLabels": {"cnpg.io/cluster": POSTGRES_CLUSTER}}}]
    assert allowed == {
        (json.dumps(rabbitmq_pods, sort_keys=True), 5672),
        (json.dumps(postgres_pods, sort_keys=True), 5432),
    }
    scrape = policies["lockgate-metrics-from-prometheus"]
    [expression] = scrape["podSelector"]["matchExpressions"]
    assert sorted(expression["values"]) == sorted(APPS)
    assert [p["port"] for p in scrape["ingress"][0]["ports"]] == ["http"]
    console = policies["lockgate-console-from-ingress"]
    assert console["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "console"
    assert [p["port"] for p in console["ingress"][0]["ports"]] == [_settings_port("console")]
    for name, selector in (("rabbitmq", rabbitmq_pods), ("postgres", postgres_pods)):
        assert [{"podSelector": policies[name]["podSelector"]}] == selector
        assert {"podSelector": {"matchLabels": app_pods}} in [
            peer for rule in policies[name]["ingress"] for peer in rule.get("from", [])
        ], f"{name} does not admit Lockgate's pods"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrate_job_runs_once(overlay: str) -> None:
    job = _one(overlay, "Job", "lockgate-migrate")
    container = _container(job)
    assert container["command"] == ["lockgate", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    database = _env(overlay, container)["LOCKGATE_DATABASE_URL"]["secretKeyRef"]
    assert (database["name"], database["key"]) == (f"{POSTGRES_CLUSTER}-app", "uri")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_image_is_set_by_the_overlay(overlay: str) -> None:
    """The base's placeholder `lockgate` must become a tagged image, never :latest."""
    for workload in _workloads(overlay):
        image = _container(workload)["image"]
        name, _, tag = image.rpartition(":")
        assert name, f"{workload['metadata']['name']}: untagged image {image!r}"
        assert tag not in {"", "latest"}, workload["metadata"]["name"]


def test_readme_covers_overlays_secrets_and_rotation() -> None:
    text = README.read_text()
    for needed in (
        *OVERLAYS,
        *EXTERNAL_SECRETS,
        "kubectl create secret",
        "rabbitmqctl change_password",
        "rollout restart",
        "lockgate tokens create",
        "lockgate tokens revoke",
        "hand-written",
    ):
        assert needed in text, needed
