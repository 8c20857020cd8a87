"""The deployment files: compose.yaml, the Dockerfile, the systemd units, the nginx example
and the environment variable reference in docs/deploy.md.

No Docker engine and no systemd instance run here, so these are static checks: the Compose
specification's JSON schema, hadolint, `systemd-analyze verify`, and assertions on what a
reviewer of each file looks for.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.core.management import CommandError, call_command

from project.management.commands.env_reference import (
    EnvReferenceError,
    read_variables,
    regenerate,
)
from tests.support.server import REPO
from tests.support.services import require_tool

COMPOSE_FILE = REPO / "compose.yaml"
COMPOSE_SCHEMA = REPO / "deploy" / "schema" / "compose-spec.json"
DOCKERFILE = REPO / "Dockerfile"
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
SYSTEMD_DIR = REPO / "deploy" / "systemd"
WEB_UNIT = SYSTEMD_DIR / "llm-chat-web.service"
WORKER_UNIT = SYSTEMD_DIR / "llm-chat-worker@.service"
SYNC_DIRECTORY_UNIT = SYSTEMD_DIR / "llm-chat-sync-directory.service"
SYNC_DIRECTORY_TIMER = SYSTEMD_DIR / "llm-chat-sync-directory.timer"
RETENTION_UNIT = SYSTEMD_DIR / "llm-chat-retention.service"
RETENTION_TIMER = SYSTEMD_DIR / "llm-chat-retention.timer"
ENV_EXAMPLE = SYSTEMD_DIR / "llm-chat.env.example"
NGINX_CONF = REPO / "deploy" / "nginx" / "llm-chat.conf"
SETTINGS_FILE = REPO / "project" / "settings.py"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
VAR_DIR = "/var/lib/llm-chat"


def setting_names() -> set[str]:
    return {variable.name for variable in read_variables(SETTINGS_FILE)}


# --- compose.yaml ------------------------------------------------------------------------


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def schema_errors(document: dict) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return [
        f"{error.json_path}: {error.message}"
        for error in validator_class(schema).iter_errors(document)
    ]


def test_compose_file_follows_the_compose_specification():
    assert schema_errors(load_compose()) == []


def test_the_schema_check_catches_a_misspelt_service_option():
    compose = load_compose()
    compose["services"]["web"]["read_onyl"] = True

    assert any("read_onyl" in error for error in schema_errors(compose))


def test_only_the_web_service_publishes_a_port():
    services = load_compose()["services"]

    publishing = {name for name, service in services.items() if service.get("ports")}

    assert publishing == {"web"}
    assert services["web"]["ports"] == ["443:8443"]


def test_every_service_is_on_the_internal_network_and_only_web_on_another():
    compose = load_compose()
    internal = {name for name, net in compose["networks"].items() if (net or {}).get("internal")}
    assert internal, "compose.yaml declares no network with internal: true"

    for name, service in compose["services"].items():
        networks = set(service.get("networks") or [])
        assert "network_mode" not in service, name
        assert networks & internal, f"{name} is not on an internal network"
        if name != "web":
            assert networks <= internal, f"{name} can reach outside: {networks - internal}"


def test_the_worker_reserves_an_nvidia_gpu():
    worker = load_compose()["services"]["worker"]

    devices = worker["deploy"]["resources"]["reservations"]["devices"]

    assert any(
        device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", [])
        for device in devices
    )
    assert worker["command"][:3] == ["python", "manage.py", "inference_worker"]


def test_no_service_runs_privileged():
    services = load_compose()["services"]

    for name, service in services.items():
        assert not service.get("privileged"), name
        assert not service.get("cap_add"), name
        assert not service.get("devices"), f"{name} maps host devices"
        for namespace in ("pid", "ipc", "userns_mode", "uts"):
            assert service.get(namespace) != "host", f"{name} shares the host's {namespace}"
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        if "build" in service:  # the project's own image
            assert service.get("read_only") is True, name
            assert service.get("cap_drop") == ["ALL"], name


def test_compose_file_holds_no_password_only_required_references():
    compose = load_compose()
    text = COMPOSE_FILE.read_text(encoding="utf-8")

    passwords = re.findall(r"\$\{([A-Z_]*PASSWORD[A-Z_]*)(:?[?-])?", text)

    assert passwords, "compose.yaml takes no password from .env"
    assert all(marker == ":?" for _, marker in passwords), passwords
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${")
    assert "://llmchat:${POSTGRES_PASSWORD:?" in compose["x-app-environment"]["DATABASE_URL"]


def test_compose_gives_the_application_only_variables_its_settings_read():
    compose = load_compose()
    known = setting_names()

    for name in ("init", "web", "worker"):
        unknown = set(compose["services"][name]["environment"]) - known
        assert not unknown, f"{name} sets {unknown}, which project/settings.py never reads"


# --- Dockerfile ----------------------------------------------------------------------------


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).parent / "hadolint"
    if not executable.exists():
        pytest.fail(f"{executable} is missing: install the dev extras (`make install-dev`).")
    return subprocess.run(
        [str(executable), "--config", str(HADOLINT_CONFIG), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = hadolint(DOCKERFILE)

    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_with_our_configuration_reports_a_style_finding(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    # DL3059 (consecutive RUN instructions) is a style-level rule.
    dockerfile.write_text("FROM python:3.11-slim\nRUN true\nRUN true\n", encoding="utf-8")

    result = hadolint(dockerfile)

    assert result.returncode != 0
    assert "DL3059" in result.stdout


def test_every_ignored_hadolint_rule_has_a_reason():
    lines = HADOLINT_CONFIG.read_text(encoding="utf-8").splitlines()
    ignored = yaml.safe_load("\n".join(lines)).get("ignored") or []

    for rule in ignored:
        index = next(i for i, line in enumerate(lines) if re.match(rf"\s*-\s*{rule}\b", line))
        assert lines[index - 1].strip().startswith("#"), f"{rule} is ignored without a reason"


def final_stage(dockerfile_text: str) -> list[str]:
    """The instructions of the last stage, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile_text)
    instructions = [line.strip() for line in joined.splitlines()]
    instructions = [line for line in instructions if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def test_the_image_runs_as_a_user_without_build_tools_and_keeps_state_in_volumes():
    stage = final_stage(DOCKERFILE.read_text(encoding="utf-8"))

    assert re.fullmatch(r"FROM python:3\.11-slim(-\w+)?", stage[0])
    users = [line.split()[1] for line in stage if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    installs = " ".join(line for line in stage if "apt-get install" in line)
    for tool in ("gcc", "build-essential", "make", "g++", "clang"):
        assert not re.search(rf"\b{re.escape(tool)}\b", installs), tool
    volumes = next(
        json.loads(line[len("VOLUME ") :]) for line in stage if line.startswith("VOLUME")
    )
    assert {"/app/var", "/models"} <= set(volumes)
    assert "EXPOSE 8443" in stage
    assert stage[-1] == 'CMD ["python", "manage.py", "serve"]'


def test_the_build_context_leaves_out_state_and_secrets():
    ignored = set((REPO / ".dockerignore").read_text(encoding="utf-8").split())

    assert {".git", ".venv", "var", ".env"} <= ignored


# --- systemd units ---------------------------------------------------------------------------


def unit_directives(path: Path) -> dict[str, list[str]]:
    """Directive name -> its values in order (systemd allows repeating most of them)."""
    directives: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        directives.setdefault(key.strip(), []).append(value.strip())
    return directives


HARDENING = {
    "User": "llmchat",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictSUIDSGID": "yes",
    "RestrictNamespaces": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
}


@pytest.mark.parametrize(
    "unit",
    [WEB_UNIT, WORKER_UNIT, SYNC_DIRECTORY_UNIT, RETENTION_UNIT],
    ids=lambda path: path.name,
)
def test_the_unit_is_hardened(unit):
    directives = unit_directives(unit)

    for name, value in HARDENING.items():
        assert directives.get(name, [None])[-1] == value, f"{unit.name}: {name}={value}"
    assert directives["ReadWritePaths"] == [VAR_DIR]
    assert f"VAR_DIR={VAR_DIR}" in directives["Environment"]
    assert directives["EnvironmentFile"][0] == "/etc/llm-chat/llm-chat.env"
    assert "@system-service" in directives["SystemCallFilter"]


def test_the_web_unit_serves_without_any_device():
    directives = unit_directives(WEB_UNIT)

    assert directives["ExecStart"] == ["/opt/llm-chat/.venv/bin/python manage.py serve"]
    assert directives["PrivateDevices"] == ["yes"]


def test_the_worker_unit_runs_one_worker_on_the_gpu_it_is_named_after():
    directives = unit_directives(WORKER_UNIT)

    assert directives["ExecStart"][0].startswith(
        "/opt/llm-chat/.venv/bin/python manage.py inference_worker"
    )
    assert "CUDA_VISIBLE_DEVICES=%i" in directives["Environment"]
    assert directives["PrivateDevices"] == ["no"]
    assert directives["DevicePolicy"] == ["closed"]
    assert any(value.startswith("char-nvidia-frontend ") for value in directives["DeviceAllow"])


def test_the_directory_sync_runs_every_15_minutes_as_a_oneshot():
    service = unit_directives(SYNC_DIRECTORY_UNIT)
    timer = unit_directives(SYNC_DIRECTORY_TIMER)

    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == ["/opt/llm-chat/.venv/bin/python manage.py sync_directory"]
    assert timer["OnCalendar"] == ["*:0/15"]
    assert timer["Unit"] == [SYNC_DIRECTORY_UNIT.name]


def test_retention_runs_daily_as_a_oneshot_of_apply_retention():
    service, timer = unit_directives(RETENTION_UNIT), unit_directives(RETENTION_TIMER)

    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == ["/opt/llm-chat/.venv/bin/python manage.py apply_retention"]
    assert service["PrivateDevices"] == ["yes"]
    assert timer["Unit"] == [RETENTION_UNIT.name]
    assert timer["OnCalendar"] == ["*-*-* 03:30:00"]
    assert timer["Persistent"] == ["yes"]


SYSTEMD_ANALYZE_HINT = "`make test` installs it; or run 'apt-get install systemd' as root"


def test_systemd_accepts_the_units(tmp_path):
    require_tool("systemd-analyze", SYSTEMD_ANALYZE_HINT)
    # verify checks that ExecStart's program exists: point it at this checkout.
    for unit in (
        WEB_UNIT,
        WORKER_UNIT,
        SYNC_DIRECTORY_UNIT,
        SYNC_DIRECTORY_TIMER,
        RETENTION_UNIT,
        RETENTION_TIMER,
    ):
        text = unit.read_text(encoding="utf-8")
        text = text.replace("/opt/llm-chat/.venv/bin/python", sys.executable)
        (tmp_path / unit.name).write_text(text.replace("/opt/llm-chat", str(REPO)))

    result = subprocess.run(
        # An instance of the template, found next to it.
        [
            "systemd-analyze",
            "verify",
            "./llm-chat-web.service",
            "./llm-chat-worker@0.service",
            f"./{SYNC_DIRECTORY_UNIT.name}",
            f"./{SYNC_DIRECTORY_TIMER.name}",
            "./llm-chat-retention.service",
            "./llm-chat-retention.timer",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # systemd only warns about a directive it cannot parse, so any output is a failure.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_under_ci_a_missing_systemd_analyze_fails_instead_of_skipping(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PATH", "")

    with pytest.raises(pytest.fail.Exception, match="systemd-analyze is not installed"):
        require_tool("systemd-analyze", SYSTEMD_ANALYZE_HINT)


def test_the_env_file_example_names_only_variables_the_settings_read():
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))

    assert names <= setting_names(), names - setting_names()
    for required in ("ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "TLS_CERT", "TLS_KEY"):
        assert re.search(rf"^{required}=", text, flags=re.MULTILINE), required


# --- nginx -------------------------------------------------------------------------------


def nginx_locations(text: str) -> dict[str, list[str]]:
    """location path -> its directives (one level deep, as in the example)."""
    locations = {}
    for path, body in re.findall(r"location\s+(\S+)\s*\{(.*?)\}", text, flags=re.DOTALL):
        directives = [line.split("#")[0].strip() for line in body.splitlines()]
        locations[path] = [" ".join(line.split()) for line in directives if line]
    return locations


def test_nginx_forwards_websockets_and_the_client_address_to_daphne_over_tls():
    text = NGINX_CONF.read_text(encoding="utf-8")
    locations = nginx_locations(text)

    assert set(locations) == {"/ws/", "/"}
    # A location with any proxy_set_header inherits none from the server block.
    for path, directives in locations.items():
        assert "proxy_pass https://llm_chat;" in directives, path
        assert "proxy_set_header Host $host;" in directives, path
        assert "proxy_set_header X-Forwarded-For $remote_addr;" in directives, path
        assert "proxy_set_header X-Forwarded-Proto https;" in directives, path
    assert "proxy_set_header Upgrade $http_upgrade;" in locations["/ws/"]
    assert 'proxy_set_header Connection "upgrade";' in locations["/ws/"]
    assert re.search(r"upstream llm_chat \{\s*server 127\.0\.0\.1:8443;", text)
    assert re.search(r"^\s*proxy_ssl_verify on;", text, flags=re.MULTILINE)
    assert not re.search(r"^\s*listen\s+(\[::\]:)?80\b", text, flags=re.MULTILINE)


def test_nginx_example_names_the_settings_it_needs():
    text = NGINX_CONF.read_text(encoding="utf-8")
    named = set(re.findall(r"^#\s+([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))

    assert {"TRUSTED_PROXIES", "PUBLIC_PORT", "BIND", "ALLOWED_HOSTS"} <= named
    assert named <= setting_names()


# --- the environment variable reference ------------------------------------------------------


def test_the_env_reference_in_the_deploy_doc_matches_the_settings():
    document = DEPLOY_DOC.read_text(encoding="utf-8")

    assert regenerate(document, SETTINGS_FILE) == document, (
        "docs/deploy.md's environment variable table is out of date: run "
        "`python manage.py env_reference --write docs/deploy.md`"
    )


EMPTY_DOC = (
    "# Doc\n\n<!-- env-reference:start -->\n| variable | default | meaning |\n|---|---|---|\n"
    "<!-- env-reference:end -->\n"
)


def write_settings(tmp_path, body: str) -> Path:
    settings_file = tmp_path / "settings.py"
    settings_file.write_text(
        "from pathlib import Path\n"
        "from core.env import env_bool, env_int, env_list, env_path, env_str\n"
        "from core.keys import SECRET_KEY_FILE\n"
        "BASE_DIR = Path(__file__).resolve().parent\n" + body,
        encoding="utf-8",
    )
    return settings_file


def test_a_new_setting_with_neither_comment_nor_documentation_is_refused(tmp_path):
    settings_file = write_settings(tmp_path, '\nWIDGETS = env_int("WIDGETS", 3)\n')

    with pytest.raises(EnvReferenceError, match="WIDGETS"):
        regenerate(EMPTY_DOC, settings_file)


def test_a_new_setting_takes_its_meaning_from_the_comment_above_it(tmp_path):
    settings_file = write_settings(
        tmp_path, '\n# Widgets shown per page,\n# at most.\nWIDGETS = env_int("WIDGETS", 3)\n'
    )

    regenerated = regenerate(EMPTY_DOC, settings_file)

    assert "| `WIDGETS` | `3` | Widgets shown per page, at most. |" in regenerated


def test_a_meaning_written_in_the_documentation_is_kept(tmp_path):
    settings_file = write_settings(tmp_path, '\n# A comment.\nWIDGETS = env_int("WIDGETS", 5)\n')
    document = EMPTY_DOC.replace(
        "|---|---|---|\n", "|---|---|---|\n| `WIDGETS` | `3` | Better. |\n"
    )

    assert "| `WIDGETS` | `5` | Better. |" in regenerate(document, settings_file)


def test_defaults_are_written_as_an_operator_would_set_them(tmp_path):
    settings_file = write_settings(
        tmp_path,
        "\n".join(
            [
                "# a",
                'VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var", base=BASE_DIR)',
                "# b",
                'ON = env_bool("ON", True)',
                "# c",
                'HOSTS = env_list("HOSTS", ["a", "b"])',
                "# d",
                'NOTHING = env_list("NOTHING", [])',
                "# e",
                'LIFETIME = env_int("SESSION_LIFETIME", 12 * 60 * 60)',
                "# f",
                'OTHER = env_int("OTHER", LIFETIME)',
                "# g",
                'MODEL = env_path("MODEL", VAR_DIR / "models" / "m", base=BASE_DIR)',
                "# h",
                'KEY = _secret("KEY", SECRET_KEY_FILE)',
                "# i",
                'NAME = env_str("NAME")',
                "",
            ]
        ),
    )

    defaults = {variable.name: variable.default for variable in read_variables(settings_file)}

    assert defaults == {
        "VAR_DIR": "`./var`",
        "ON": "`true`",
        "HOSTS": "`a,b`",
        "NOTHING": "none",
        "SESSION_LIFETIME": "`43200`",
        "OTHER": "as `SESSION_LIFETIME`",
        "MODEL": "`VAR_DIR/models/m`",
        "KEY": "file `VAR_DIR/keys/django_secret_key`",
        "NAME": "none",
    }


def test_the_command_writes_the_table_and_then_finds_it_current(tmp_path):
    document = tmp_path / "deploy.md"
    document.write_text(DEPLOY_DOC.read_text(encoding="utf-8").replace("`8443`", "`80`"))

    with pytest.raises(CommandError, match="does not match"):
        call_command("env_reference", "--check", str(document))
    call_command("env_reference", "--write", str(document))
    call_command("env_reference", "--check", str(document))

    assert document.read_text(encoding="utf-8") == DEPLOY_DOC.read_text(encoding="utf-8")
