"""The Kubernetes manifests in deploy/kubernetes (a base and the production overlay).

No cluster runs here, so these are static checks: every rendered object against the
Kubernetes 1.33 API schemas (kubernetes-validate, which ships them, offline, in strict mode
so that a misspelt field fails), and our own policy on what a reviewer looks for: the
restricted Pod Security profile, probes, GPU requests, network policies, key files mounted
from Secrets, settings that exist. Overlays are rendered with `kubectl kustomize` where
kubectl (or kustomize) is installed, and with tests/support/kustomize.py otherwise.
"""

import copy
import ipaddress
import shutil
import subprocess

import pytest
import yaml
from django.core.management import get_commands
from django.urls import resolve
from kubernetes_validate import utils as kubernetes_schemas

from core.keys import GENERATORS, new_key, read_key_file
from project.management.commands.env_reference import read_variables
from tests.support import kustomize
from tests.support.server import REPO

KUBERNETES = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"
VARIANTS = ["base", "overlays/production"]
POD_TEMPLATE_KINDS = {"Deployment", "CronJob"}
# The volume types the restricted Pod Security profile allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SCHEDULED_COMMANDS = {"apply_retention", "sync_directory", "audit_verify", "backup"}


def kustomize_command() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(variant: str) -> list[dict]:
    command = kustomize_command()
    if command is None:
        return kustomize.render(KUBERNETES / variant)
    output = subprocess.run(
        [*command, str(KUBERNETES / variant)], capture_output=True, text=True, check=True
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


@pytest.fixture(scope="module", params=VARIANTS)
def objects(request) -> list[dict]:
    return render(request.param)


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_templates(objects: list[dict]) -> dict[str, dict]:
    templates = {}
    for document in objects:
        if document["kind"] == "Deployment":
            templates[document["metadata"]["name"]] = document["spec"]["template"]
        elif document["kind"] == "CronJob":
            job = document["spec"]["jobTemplate"]["spec"]
            templates[document["metadata"]["name"]] = job["template"]
    return templates


def containers_of(pod_spec: dict) -> list[dict]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def settings_of(objects: list[dict]) -> dict[str, str]:
    return one(objects, "ConfigMap", "llm-chat-settings")["data"]


# --- the schemas -------------------------------------------------------------------------


def schema_errors(document: dict) -> list[str]:
    try:
        kubernetes_schemas.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_schemas.ValidationError as error:
        return [f"{'.'.join(str(p) for p in error.path)}: {error.message}"]
    return []


def test_every_object_follows_the_kubernetes_schemas(objects):
    errors = {
        f"{o['kind']}/{o['metadata']['name']}": schema_errors(o)
        for o in objects
        if schema_errors(o)
    }

    assert errors == {}


def test_the_schema_check_catches_a_misspelt_field(objects):
    web = copy.deepcopy(one(objects, "Deployment", "llm-chat-web"))
    web["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = (
        True
    )

    assert any("readOnlyRootFilesytem" in error for error in schema_errors(web))


def test_the_schema_check_catches_a_wrong_type(objects):
    worker = copy.deepcopy(one(objects, "Deployment", "llm-chat-worker"))
    worker["spec"]["replicas"] = "two"

    assert schema_errors(worker) != []


def test_the_fallback_renderer_gives_what_kustomize_gives():
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kubectl nor kustomize is installed; the fallback renderer was used")
    for variant in VARIANTS:
        by_identity = {kustomize.identity(o): o for o in render(variant)}
        fallback = {kustomize.identity(o): o for o in kustomize.render(KUBERNETES / variant)}
        assert fallback == by_identity, variant


# --- the restricted Pod Security profile, and ours -----------------------------------------


def pod_policy_violations(name: str, template: dict) -> list[str]:
    """What in one pod template breaks the restricted Pod Security profile or our rules."""
    spec = template["spec"]
    pod_security = spec.get("securityContext", {})
    problems = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{name}: {field}")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: the service account token is mounted")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"{name}: volume {volume['name']} is {sorted(kinds)}")
    for container in containers_of(spec):
        where = f"{name}/{container['name']}"
        security = container.get("securityContext", {})

        def effective(field, security=security):
            return security.get(field, pod_security.get(field))

        if security.get("privileged"):
            problems.append(f"{where}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: may escalate privileges")
        if effective("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if effective("runAsUser") in (0, None):
            problems.append(f"{where}: runs as root (runAsUser {effective('runAsUser')})")
        if effective("runAsGroup") in (0, None):
            problems.append(f"{where}: runs with the root group")
        if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccomp profile is not RuntimeDefault")
        capabilities = security.get("capabilities", {})
        if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
            problems.append(f"{where}: keeps capabilities {capabilities}")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: the root filesystem is writable")
        if "memory" not in container.get("resources", {}).get("limits", {}):
            problems.append(f"{where}: no memory limit")
    return problems


def test_every_pod_meets_the_restricted_profile_and_our_rules(objects):
    templates = pod_templates(objects)
    assert set(templates) >= {"llm-chat-web", "llm-chat-worker"}

    problems = [p for name, t in templates.items() for p in pod_policy_violations(name, t)]

    assert problems == []


def _as_root_in_container(template):
    template["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0


def _as_root_in_pod(template):
    template["spec"]["securityContext"]["runAsUser"] = 0


def _no_user_at_all(template):
    del template["spec"]["securityContext"]["runAsUser"]


def _root_allowed(template):
    template["spec"]["initContainers"][0]["securityContext"]["runAsNonRoot"] = False


def _capability_added(template):
    template["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def _writable_root(template):
    del template["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"]


def _unconfined(template):
    template["spec"]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


def _host_path(template):
    template["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})


def _escalation(template):
    template["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


@pytest.mark.parametrize(
    "change",
    [
        _as_root_in_container,
        _as_root_in_pod,
        _no_user_at_all,
        _root_allowed,
        _capability_added,
        _writable_root,
        _unconfined,
        _host_path,
        _escalation,
    ],
)
def test_the_policy_check_fails_a_pod_that_breaks_it(objects, change):
    template = copy.deepcopy(pod_templates(objects)["llm-chat-web"])
    change(template)

    assert pod_policy_violations("llm-chat-web", template) != []


def test_the_namespace_enforces_the_restricted_profile(objects):
    labels = one(objects, "Namespace", "llm-chat")["metadata"]["labels"]

    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    major_minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    assert labels["pod-security.kubernetes.io/enforce-version"] == f"v{major_minor}"
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {
        "llm-chat"
    }


def test_the_image_user_is_the_one_the_pods_run_as(objects):
    dockerfile_user = next(
        line.split()[1]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    )
    uid, gid = (int(part) for part in dockerfile_user.split(":"))

    for template in pod_templates(objects).values():
        assert template["spec"]["securityContext"]["runAsUser"] == uid
        assert template["spec"]["securityContext"]["runAsGroup"] == gid


# --- web and workers -----------------------------------------------------------------------


def test_web_is_ready_on_healthz_and_alive_on_a_probe_without_the_database(objects):
    web = one(objects, "Deployment", "llm-chat-web")["spec"]["template"]["spec"]["containers"][0]
    readiness = web["readinessProbe"]["httpGet"]
    liveness = web["livenessProbe"]["httpGet"]

    assert (readiness["path"], readiness["scheme"]) == ("/healthz", "HTTPS")
    assert (liveness["path"], liveness["scheme"]) == ("/livez", "HTTPS")
    # tests/project/test_livez.py shows that /livez answers without the database.
    assert resolve(liveness["path"]).url_name == "livez"
    assert resolve(readiness["path"]).url_name == "healthz"
    allowed_hosts = settings_of(objects)["ALLOWED_HOSTS"].split(",")
    for probe in (readiness, liveness):
        hosts = [h["value"] for h in probe["httpHeaders"] if h["name"] == "Host"]
        assert hosts and set(hosts) <= set(allowed_hosts)


def test_only_the_workers_request_a_gpu(objects):
    for name, template in pod_templates(objects).items():
        for container in containers_of(template["spec"]):
            resources = container.get("resources", {})
            gpus = resources.get("limits", {}).get("nvidia.com/gpu")
            if name == "llm-chat-worker" and container["name"] == "worker":
                assert gpus == "1"
                assert resources["requests"]["nvidia.com/gpu"] == "1"
                assert container["command"][:3] == ["python", "manage.py", "inference_worker"]
            else:
                assert gpus is None, f"{name}/{container['name']}"


def test_the_ingress_ends_tls_for_the_allowed_host_and_forwards_over_tls(objects):
    ingress = one(objects, "Ingress", "llm-chat-web")
    rule_hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    tls_hosts = {host for entry in ingress["spec"]["tls"] for host in entry["hosts"]}
    annotations = ingress["metadata"]["annotations"]

    assert rule_hosts == tls_hosts
    assert rule_hosts <= set(settings_of(objects)["ALLOWED_HOSTS"].split(","))
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert annotations["nginx.ingress.kubernetes.io/proxy-ssl-verify"] == "on"
    assert annotations["nginx.ingress.kubernetes.io/proxy-ssl-name"] in rule_hosts
    service = one(objects, "Service", "llm-chat-web")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["targetPort"] == "https"


# --- network policies ----------------------------------------------------------------------


def selects(policy: dict, template: dict) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    labels = template["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in wanted.items())


def test_nothing_reaches_a_pod_unless_a_policy_lets_it(objects):
    deny = one(objects, "NetworkPolicy", "llm-chat-default-deny")

    assert deny["spec"]["podSelector"] == {}
    assert deny["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny["spec"]


def test_workers_and_jobs_accept_no_connection(objects):
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for name, template in pod_templates(objects).items():
        if name == "llm-chat-web":
            continue
        applying = [p for p in policies if selects(p, template)]
        assert applying, f"{name} is selected by no policy"
        for policy in applying:
            assert policy["spec"]["policyTypes"] == ["Ingress"]
            assert not policy["spec"].get("ingress"), f"{policy['metadata']['name']} admits {name}"


def test_web_is_reachable_only_from_the_intranet_and_the_ingress_controller(objects):
    web = pod_templates(objects)["llm-chat-web"]
    policies = [
        p
        for p in objects
        if p["kind"] == "NetworkPolicy" and selects(p, web) and p["spec"].get("ingress")
    ]
    internal = [
        ipaddress.ip_network(n) for n in settings_of(objects)["INTERNAL_NETWORKS"].split(",")
    ]

    assert [p["metadata"]["name"] for p in policies] == ["llm-chat-web"]
    for rule in policies[0]["spec"]["ingress"]:
        assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
        for source in rule["from"]:
            if "ipBlock" in source:
                block = ipaddress.ip_network(source["ipBlock"]["cidr"])
                assert any(block.subnet_of(n) for n in internal), block
            else:
                namespace = source["namespaceSelector"]["matchLabels"]
                assert namespace == {"kubernetes.io/metadata.name": "ingress-nginx"}
                assert source["podSelector"]["matchLabels"]


def test_no_pod_reaches_web_through_the_intranet_ranges(objects):
    pod_networks = [
        ipaddress.ip_network(n) for n in settings_of(objects)["TRUSTED_PROXIES"].split(",")
    ]
    policy = one(objects, "NetworkPolicy", "llm-chat-web")

    for rule in policy["spec"]["ingress"]:
        for source in rule["from"]:
            if "ipBlock" not in source:
                continue
            block = ipaddress.ip_network(source["ipBlock"]["cidr"])
            excepted = [ipaddress.ip_network(n) for n in source["ipBlock"].get("except", [])]
            for pods in pod_networks:
                if pods.overlaps(block):
                    assert any(pods.subnet_of(e) for e in excepted), f"{pods} within {block}"


def test_the_ingress_admits_only_the_intranet(objects):
    ingress = one(objects, "Ingress", "llm-chat-web")
    annotation = "nginx.ingress.kubernetes.io/whitelist-source-range"
    internal = [
        ipaddress.ip_network(n) for n in settings_of(objects)["INTERNAL_NETWORKS"].split(",")
    ]

    for network in ingress["metadata"]["annotations"][annotation].split(","):
        assert any(ipaddress.ip_network(network).subnet_of(n) for n in internal), network


# --- secrets and settings ------------------------------------------------------------------


def test_every_pod_gets_every_key_file_from_the_secret(objects):
    for name, template in pod_templates(objects).items():
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        secret = volumes["keys"]["secret"]
        assert secret["secretName"] == "llm-chat-keys", name
        assert {item["key"] for item in secret["items"]} == set(GENERATORS), name
        assert all(item["key"] == item["path"] for item in secret["items"]), name
        # Readable by the pod's group only; the first init container makes 0600 copies.
        assert secret["defaultMode"] == 0o440, name
        first = template["spec"]["initContainers"][0]
        assert "/run/secrets/llm-chat/keys/" in " ".join(first["command"])
        assert "install -m 0600" in " ".join(first["command"])
        # No key ever travels in an environment variable.
        for container in containers_of(template["spec"]):
            names = {variable["name"] for variable in container.get("env", [])}
            assert not names & {"SECRET_KEY", "CHAT_ENCRYPTION_KEYS", "AUDIT_HMAC_KEY"}


def test_the_web_serves_with_a_private_copy_of_its_tls_key(objects):
    pod = pod_templates(objects)["llm-chat-web"]["spec"]
    web = pod["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in web["env"]}
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]
    copying = " ".join(pod["initContainers"][0]["command"])

    assert env["TLS_CERT"].startswith("/app/var/") and env["TLS_KEY"].startswith("/app/var/")
    assert {item["key"] for item in tls["items"]} == {"tls.crt", "tls.key"}
    assert (
        f"install -m 0600 /run/secrets/llm-chat/tls/tls.crt /run/secrets/llm-chat/tls/tls.key {env['TLS_KEY'].rsplit('/', 1)[0]}/"
        in copying
    )
    # The main container never mounts a Secret: it reads only the copies.
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    assert not {m["name"] for m in web["volumeMounts"]} & secret_volumes


def test_the_copies_the_init_containers_make_are_accepted_by_the_server(objects, tmp_path):
    """Runs each pod's copying steps (the `install` commands of its first init container)
    against Secret-like files of mode 0440, then reads the copies as the server does."""
    secrets_dir, var_dir = tmp_path / "secrets", tmp_path / "var"
    for name in GENERATORS:
        (secrets_dir / "keys").mkdir(parents=True, exist_ok=True)
        (secrets_dir / "keys" / name).write_text(new_key(name) + "\n")
    (secrets_dir / "tls").mkdir()
    for name in ("tls.crt", "tls.key"):
        (secrets_dir / "tls" / name).write_text("-----BEGIN PEM-----\n")
    for path in secrets_dir.rglob("*"):
        path.chmod(0o750 if path.is_dir() else 0o440)

    for name, template in pod_templates(objects).items():
        shutil.rmtree(var_dir, ignore_errors=True)
        command = template["spec"]["initContainers"][0]["command"]
        assert command[:2] == ["sh", "-c"], name
        steps = [step.strip() for step in command[2].split("&&")]
        copying = " && ".join(step for step in steps if step.startswith("install "))
        copying = copying.replace("/run/secrets/llm-chat", str(secrets_dir))
        copying = copying.replace("/app/var", str(var_dir))
        subprocess.run(["sh", "-c", copying], check=True)

        for key_name in GENERATORS:
            assert read_key_file(var_dir / "keys" / key_name) == [
                (secrets_dir / "keys" / key_name).read_text().strip()
            ], name
        for copied in var_dir.rglob("*"):
            mode = copied.stat().st_mode & 0o777
            assert mode == (0o700 if copied.is_dir() else 0o600), f"{name}: {copied} {mode:o}"


def test_the_settings_are_variables_the_project_reads(objects):
    known = {variable.name for variable in read_variables(REPO / "project" / "settings.py")}
    configured = set(settings_of(objects))
    for template in pod_templates(objects).values():
        for container in containers_of(template["spec"]):
            configured |= {v["name"] for v in container.get("env", [])} - {"POD_NAME"}

    assert configured - known == set()


def test_the_images_are_the_projects_and_pinned(objects):
    compose_image = yaml.safe_load((REPO / "compose.yaml").read_text())["x-app"]["image"]
    version = compose_image.partition(":")[2]
    for name, template in pod_templates(objects).items():
        for container in containers_of(template["spec"]):
            repository, _, tag = container["image"].rpartition(":")
            assert repository.endswith("llm-chat"), f"{name}/{container['name']}"
            assert tag == version, f"{name}/{container['name']}"


# --- scheduled jobs ------------------------------------------------------------------------


def scheduled_commands(objects) -> dict[str, list[str]]:
    commands = {}
    for cronjob in (o for o in objects if o["kind"] == "CronJob"):
        container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][:2] == ["python", "manage.py"]
        commands[container["command"][2]] = container["command"]
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    return commands


def test_retention_directory_sync_audit_verification_and_backups_are_scheduled(objects):
    assert set(scheduled_commands(objects)) == SCHEDULED_COMMANDS


@pytest.mark.parametrize("command", sorted(SCHEDULED_COMMANDS))
def test_each_scheduled_command_exists(command):
    if command not in get_commands() and command in {"apply_retention", "sync_directory"}:
        pytest.skip(f"manage.py {command} is not part of this checkout yet")
    assert command in get_commands()


def test_backups_write_the_database_and_the_keys_to_separate_volumes(objects):
    backup = one(objects, "CronJob", "llm-chat-backup")
    pod = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }

    output = command[command.index("--output") + 1]
    keys_output = command[command.index("--keys-output") + 1]
    assert claims[mounts[output]] != claims[mounts[keys_output]]


# --- the data key store and the document indexer -------------------------------------------

DATA_KEYS_CLAIM = "llm-chat-data-keys"
# Which pods see the data key store, and whether they may write to it: the web pods make and
# destroy keys (and their init container runs migrations that seal rows), retention erases;
# the workers, the indexer and the backup only read.
DATA_KEY_ACCESS = {
    "llm-chat-web": "read-write",
    "llm-chat-apply-retention": "read-write",
    "llm-chat-worker": "read-only",
    "llm-chat-indexer": "read-only",
    "llm-chat-backup": "read-only",
}


def data_key_problems(objects: list[dict]) -> list[str]:
    """What keeps a pod from seeing the one shared key store as it needs to."""
    problems = []
    claim = one(objects, "PersistentVolumeClaim", DATA_KEYS_CLAIM)
    if claim["spec"]["accessModes"] != ["ReadWriteMany"]:
        problems.append(f"{DATA_KEYS_CLAIM} is {claim['spec']['accessModes']}, not ReadWriteMany")
    store = settings_of(objects).get("DATA_KEY_DIR")
    if not store or not store.startswith("/"):
        problems.append(f"DATA_KEY_DIR is {store!r}, not an absolute path")
    templates = pod_templates(objects)
    for name, access in DATA_KEY_ACCESS.items():
        spec = templates[name]["spec"]
        volumes = [
            v
            for v in spec["volumes"]
            if v.get("persistentVolumeClaim", {}).get("claimName") == DATA_KEYS_CLAIM
        ]
        if len(volumes) != 1:
            problems.append(f"{name}: {len(volumes)} volumes of {DATA_KEYS_CLAIM}")
            continue
        volume = volumes[0]
        read_only = access == "read-only"
        if bool(volume["persistentVolumeClaim"].get("readOnly")) != read_only:
            problems.append(f"{name}: the volume is not {access}")
        # Every container that runs the project's code there: the main ones, and an init
        # container that runs manage.py (migrations seal rows).
        runs_code = [
            *spec["containers"],
            *(c for c in spec.get("initContainers", []) if "manage.py" in " ".join(c["command"])),
        ]
        for container in runs_code:
            mounts = [m for m in container.get("volumeMounts", []) if m["name"] == volume["name"]]
            where = f"{name}/{container['name']}"
            if [m["mountPath"] for m in mounts] != [store]:
                problems.append(f"{where}: the key store is not mounted at DATA_KEY_DIR")
            elif bool(mounts[0].get("readOnly")) != read_only:
                problems.append(f"{where}: the key store is not mounted {access}")
    return problems


def test_every_pod_that_reads_content_sees_the_one_shared_key_store(objects):
    assert data_key_problems(objects) == []


def _worker_may_write_keys(objects):
    pod = pod_templates(objects)["llm-chat-worker"]["spec"]
    for mount in pod["containers"][0]["volumeMounts"]:
        mount.pop("readOnly", None)


def _web_without_keys(objects):
    pod = pod_templates(objects)["llm-chat-web"]["spec"]
    pod["containers"][0]["volumeMounts"] = [
        m for m in pod["containers"][0]["volumeMounts"] if m["name"] != "data-keys"
    ]


def _migrations_without_keys(objects):
    pod = pod_templates(objects)["llm-chat-web"]["spec"]
    init = pod["initContainers"][0]
    init["volumeMounts"] = [m for m in init["volumeMounts"] if m["name"] != "data-keys"]


def _store_per_node(objects):
    one(objects, "PersistentVolumeClaim", DATA_KEYS_CLAIM)["spec"]["accessModes"] = [
        "ReadWriteOnce"
    ]


def _store_elsewhere(objects):
    settings_of(objects)["DATA_KEY_DIR"] = "/app/var/keys/data"


@pytest.mark.parametrize(
    "change",
    [
        _worker_may_write_keys,
        _web_without_keys,
        _migrations_without_keys,
        _store_per_node,
        _store_elsewhere,
    ],
)
def test_the_key_store_check_fails_a_pod_that_does_not_see_it_as_needed(objects, change):
    broken = copy.deepcopy(objects)
    change(broken)
    assert data_key_problems(broken)


def test_documents_are_indexed_by_their_own_workers_that_accept_no_connection(objects):
    indexer = pod_templates(objects)["llm-chat-indexer"]
    container = indexer["spec"]["containers"][0]

    assert container["command"][:3] == ["python", "manage.py", "index_documents"]
    assert "index_documents" in get_commands()
    assert not container.get("ports") and "readinessProbe" not in container
    # The web pods leave indexing to it.
    assert settings_of(objects)["DOCUMENTS_INDEX_IN_WEB"] == "false"
    policies = [p for p in objects if p["kind"] == "NetworkPolicy" and selects(p, indexer)]
    assert {p["metadata"]["name"] for p in policies} >= {"llm-chat-indexer"}
    assert all(not p["spec"].get("ingress") for p in policies)
    # Its own pods only: no other Deployment's selector takes them.
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        if deployment["metadata"]["name"] != "llm-chat-indexer":
            wanted = deployment["spec"]["selector"]["matchLabels"]
            labels = indexer["metadata"]["labels"]
            assert not all(labels.get(k) == v for k, v in wanted.items())
