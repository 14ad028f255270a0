"""The deployment files agree with each other and with the daemon: systemd unit, Dockerfile, compose, docs.

Docker cannot build here (no engine), so the Dockerfile and compose.yaml are read statically;
the image's health-check command is run for real against a loopback /healthz. The unit is
checked with `systemd-analyze verify` when systemd-analyze is installed.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from autopublish.config import load_config

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "autopublish.service"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCS = ROOT / "docs" / "running-as-a-service.md"


# --- systemd -------------------------------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser


def test_unit_runs_the_daemon_with_the_documented_paths():
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/autopublish/.venv/bin/autopublish"
    assert argv[1:] == ["--config", "/etc/autopublish/autopublish.toml", "--env-file", "/etc/autopublish/.env", "run"]
    assert service["WorkingDirectory"] == "/var/lib/autopublish"
    assert service["StateDirectory"] == "autopublish"
    assert service["User"] == "autopublish"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure" and service["RestartSec"] == "10"
    assert service["KillSignal"] == "SIGTERM"
    assert "ReadWritePaths" in service
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_stop_timeout_is_longer_than_the_longest_call_in_flight():
    """On SIGTERM the daemon finishes what is in flight: one feed download or one platform call (connect + read)."""
    service = _unit()["Service"]
    stop_timeout = int(service["TimeoutStopSec"])
    settings = load_config(ROOT / "config" / "autopublish.example.toml", {}).settings
    assert stop_timeout >= 90
    assert stop_timeout > max(settings.fetch_deadline, 10 + settings.publish_timeout) + 10  # + the recording, with a margin


def test_unit_is_hardened():
    service = _unit()["Service"]
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert service.get("CapabilityBoundingSet") == ""  # no capabilities at all


def test_unit_secrets_are_reread_on_reload():
    """The .env is read by autopublish (--env-file) on every reload; EnvironmentFile= would pin the old values.

    A value in the real environment wins over .env (README), so a token loaded into the
    environment at start would shadow a renewed one written by `autopublish connect facebook`.
    """
    service = _unit()["Service"]
    assert "EnvironmentFile" not in service
    assert "--env-file" in service["ExecStart"]


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd); the unit was checked by parsing only")
    # verify insists that ExecStart's binary exists: point it at this interpreter (python -m autopublish).
    text = UNIT.read_text(encoding="utf-8")
    text = re.sub(r"^ExecStart=/opt/autopublish/\.venv/bin/autopublish", f"ExecStart={Path(sys.executable).resolve()} -m autopublish",
                  text, count=1, flags=re.M)
    unit = tmp_path / "autopublish.service"
    unit.write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "autopublish.service" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert ours == [], ours  # unknown keys are only warnings ("Unknown key ..., ignoring"): none allowed


def test_unit_security_exposure_is_low(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = tmp_path / "autopublish.service"
    shutil.copy(UNIT, unit)
    result = subprocess.run([analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for autopublish\.service: (\d+\.\d)", result.stdout)
    if result.returncode != 0 or match is None:
        pytest.skip(f"this systemd-analyze has no offline security check: {result.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.0, result.stdout  # systemd calls <= 2.0 "OK"


# --- Dockerfile -------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def _one(name: str) -> str:
    found = [args for word, args in _instructions() if word == name]
    assert len(found) == 1, f"expected one {name}, found {found}"
    return found[0]


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in _instructions():
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_dockerfile_is_conventional_and_runs_as_a_user():
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert _one("WORKDIR") == "/app"
    words = [word for word, _ in instructions]
    user = _one("USER").split(":")[0]
    assert user not in ("root", "0", "")
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")  # nothing runs as root after it
    assert json.loads(_one("CMD")) == ["autopublish", "run"]
    assert json.loads(_one("VOLUME")) == ["/app/queue"]
    assert _one("EXPOSE") == "9464"
    assert "pip install ." in _one("RUN")


def test_dockerfile_copies_only_what_exists_and_is_not_ignored():
    ignored = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    for word, args in _instructions():
        if word != "COPY":
            continue
        *sources, _target = args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source not in ignored and source.rstrip("/") not in ignored, f"{source} is excluded by .dockerignore"
    # Secrets and state never reach the build context.
    for secret in (".env", "queue", "config/autopublish.toml", ".git", ".venv"):
        assert secret in ignored


def _healthcheck_argv() -> list[str]:
    args = _one("HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return json.loads(command)


def test_healthcheck_asks_the_daemon_health_endpoint():
    argv = _healthcheck_argv()
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:9464/healthz" in argv[2]


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1), (None, 1)])
def test_healthcheck_command_exits_by_the_health_status(status, code):
    """The image's health-check program, run for real against a loopback /healthz (200, 503, nobody listening)."""
    argv = _healthcheck_argv()
    server = _health_server(status or 200)
    port = server.server_address[1]
    if status is None:
        server.shutdown()
        server.server_close()
    try:
        program = argv[2].replace("127.0.0.1:9464", f"127.0.0.1:{port}")
        result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30)
    finally:
        if status is not None:
            server.shutdown()
            server.server_close()
    assert result.returncode == code, result.stderr
    assert result.stderr == ""  # no traceback in `docker inspect`'s health log


def _health_server(status: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            body = json.dumps({"status": "ok" if status == 200 else "down"}).encode()
            self.send_response(status if self.path == "/healthz" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- compose.yaml -------------------------------------------------------------------------------


def _yaml(text: str) -> Any:
    """A tiny YAML reader for compose.yaml's subset: block mappings and lists, scalars, JSON-style flow lists.

    PyYAML is not a dependency; anything outside the subset fails loudly here rather than
    being read wrong.
    """
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        stripped = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if stripped.strip():
            lines.append((len(stripped) - len(stripped.lstrip(" ")), stripped.strip()))

    def scalar(value: str) -> Any:
        if value.startswith("["):
            return json.loads(value)
        if value[:1] in "\"'" and value[-1:] == value[:1]:
            return value[1:-1]
        return value

    def block(index: int, indent: int) -> tuple[Any, int]:
        if lines[index][1].startswith("- "):
            items = []
            while index < len(lines) and lines[index][0] == indent and lines[index][1].startswith("- "):
                items.append(scalar(lines[index][1][2:].strip()))
                index += 1
            return items, index
        mapping: dict[str, Any] = {}
        while index < len(lines) and lines[index][0] == indent:
            key, sep, value = lines[index][1].partition(":")
            assert sep, f"not a mapping line: {lines[index][1]!r}"
            value = value.strip()
            index += 1
            if value:
                mapping[key.strip()] = scalar(value)
            elif index < len(lines) and lines[index][0] > indent:
                mapping[key.strip()], index = block(index, lines[index][0])
            elif index < len(lines) and lines[index][0] == indent and lines[index][1].startswith("- "):
                mapping[key.strip()], index = block(index, indent)  # a list at the key's own indent
            else:
                mapping[key.strip()] = None
        assert index >= len(lines) or lines[index][0] < indent, f"bad indentation near {lines[index][1]!r}"
        return mapping, index

    result, end = block(0, lines[0][0])
    assert end == len(lines)
    return result


def _compose() -> dict[str, Any]:
    return _yaml(COMPOSE.read_text(encoding="utf-8"))


def test_compose_runs_the_daemon_with_its_state_volume_config_and_env_file():
    compose = _compose()
    daemon = compose["services"]["autopublish"]
    assert daemon["build"]["context"] == ".."
    assert (COMPOSE.parent / daemon["build"]["context"] / daemon["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert daemon["restart"] == "unless-stopped"
    assert daemon["env_file"] == ["../.env"]
    assert daemon["command"] == ["autopublish", "run"]
    mounts = {target: source for source, target, *_ in (volume.split(":") for volume in daemon["volumes"])}
    assert mounts["/app/queue"] == "queue" and "queue" in compose["volumes"]  # a named volume: survives re-creation
    assert json.loads(_one("VOLUME")) == ["/app/queue"]
    # The config the image looks for is the one compose mounts (the folder, read only).
    config_path = _env()["AUTOPUBLISH_CONFIG"]
    assert config_path == "/app/config/autopublish.toml"
    assert mounts[str(Path(config_path).parent)] == "../config"
    assert (COMPOSE.parent / "../config").resolve() == ROOT / "config"
    assert next(v for v in daemon["volumes"] if v.startswith("../config:")).endswith(":ro")
    assert int(daemon["stop_grace_period"].rstrip("s")) >= 90


def test_compose_web_service_is_optional_and_shares_the_state():
    compose = _compose()
    web = compose["services"]["web"]
    assert web["profiles"] == ["web"]
    assert web["command"][:2] == ["autopublish", "web"]
    assert "queue:/app/queue" in web["volumes"]
    assert all(port.startswith("127.0.0.1:") for port in web["ports"])  # not on the public interface
    port = web["command"][web["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(web["healthcheck"]["test"])


# --- the docs agree -----------------------------------------------------------------------------


def test_docs_metrics_address_is_what_the_healthcheck_asks():
    docs = DOCS.read_text(encoding="utf-8")
    addresses = set(re.findall(r'metrics = "([^"]+)"', docs))
    assert "127.0.0.1:9464" in addresses
    assert all(address.endswith(":9464") for address in addresses), addresses
    assert "http://127.0.0.1:9464/healthz" in " ".join(_healthcheck_argv())


def test_docs_name_the_paths_the_unit_and_image_use():
    docs = DOCS.read_text(encoding="utf-8")
    service = _unit()["Service"]
    for needle in ('state_dir = "/var/lib/autopublish/queue"', "/etc/autopublish/autopublish.toml", "/etc/autopublish/.env",
                   "/opt/autopublish/.venv", "systemctl enable --now autopublish", "journalctl -u autopublish -f",
                   "systemctl reload autopublish", "autopublish backup", "/app/config/autopublish.toml", "/app/queue",
                   "docker compose -f deploy/compose.yaml"):
        assert needle in docs, needle
    assert service["WorkingDirectory"] in docs


def test_docs_config_examples_are_valid(tmp_path):
    """Every ```toml block of the docs that is a whole config loads (secrets given as placeholders)."""
    docs = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", docs, flags=re.S)
    assert blocks
    environ = {"SMTP_PASSWORD": "x", "FACEBOOK_PAGE_TOKEN": "x"}
    checked = 0
    for number, block in enumerate(blocks):
        if "[feeds." not in block:
            continue  # a fragment
        block = block.replace("/var/lib/autopublish/queue", str(tmp_path / "queue"))
        path = tmp_path / f"docs-{number}.toml"
        path.write_text(block, encoding="utf-8")
        load_config(path, environ)
        checked += 1
    assert checked >= 1


# --- compose.nodes.yaml: several nodes on one PostgreSQL --------------------------------------------


def test_compose_nodes_runs_postgresql_one_migration_and_several_nodes():
    path = ROOT / "deploy" / "compose.nodes.yaml"
    compose = _yaml(path.read_text(encoding="utf-8"))
    services = compose["services"]
    postgres, migrate, node = services["postgres"], services["migrate"], services["autopublish"]
    assert postgres["image"].startswith("postgres:") and "ports" not in postgres  # reachable from the nodes only
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${DB_PASSWORD")  # from .env, never written here
    assert "pgdata" in compose["volumes"]
    assert migrate["command"] == ["autopublish", "db", "upgrade"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert node["command"] == ["autopublish", "run"] and int(node["deploy"]["replicas"]) >= 2
    assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert node["env_file"] == ["../.env"] and "../config:/app/config:ro" in node["volumes"]
    docs = (ROOT / "docs" / "running-several-nodes.md").read_text(encoding="utf-8")
    assert "deploy/compose.nodes.yaml" in docs and "autopublish db upgrade" in docs and "${DB_PASSWORD}" in docs
