"""deploy/ without Docker: every file parses, every command and variable is real.

Commands are checked against the real command lines: Celery's click
commands (``celery -A bridge worker|beat|inspect``), Flower's options and
``bridge``'s own commands; environment variables against what bridge, Flower
or Python read. One real ``--help`` run per entry point proves they start.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
MANIFESTS = sorted(p for p in (DEPLOY / "kubernetes").glob("*.yaml")
                   if p.name != "kustomization.yaml")
OUR_IMAGE = "bridge:latest"
PYTHON_VARIABLES = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


# --- reading the files --------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def our_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items()
            if svc.get("image") == OUR_IMAGE}


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def manifests() -> Iterator[dict[str, Any]]:
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                yield document


def containers() -> Iterator[dict[str, Any]]:
    for document in manifests():
        if document["kind"] == "Deployment":
            yield from document["spec"]["template"]["spec"]["containers"]


def _health(test: list[str]) -> list[str]:
    kind, *rest = test
    return shlex.split(rest[0]) if kind == "CMD-SHELL" else rest


def all_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) for every command deploy/ runs in our image, probes included."""
    found: list[tuple[str, list[str]]] = []
    for name, svc in our_services().items():
        found.append((f"compose {name}", svc["command"]))
        if "healthcheck" in svc:
            found.append((f"compose {name} healthcheck", _health(svc["healthcheck"]["test"])))
    for path in UNITS:
        found.append((path.name, shlex.split(unit(path)["Service"]["ExecStart"])))
    for container in containers():
        found.append((f"kubernetes {container['name']}", container["command"]))
        for probe in ("livenessProbe", "readinessProbe"):
            command = container.get(probe, {}).get("exec", {}).get("command")
            if command:
                found.append((f"kubernetes {container['name']} {probe}", command))
    cmd = re.search(r"^CMD (.+)$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd, "the Dockerfile has no CMD"
    found.append(("Dockerfile CMD", json.loads(cmd[1])))
    return found


# --- checking commands --------------------------------------------------------


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _flower_options() -> set[str]:
    from flower.options import options

    return {name.replace("_", "-") for name in options._options}


def check_celery(argv: list[str]) -> None:
    from celery.bin.celery import celery as celery_cli

    assert argv[1:3] == ["-A", "bridge"], f"{argv}: not the bridge app"
    sub, args = argv[3], argv[4:]
    flags = [arg.split("=", 1)[0] for arg in args if arg.startswith("-")]
    if sub == "flower":
        known = _flower_options()
        unknown = [flag for flag in flags if flag[2:] not in known]
    else:
        known = _options(celery_cli.commands[sub])
        unknown = [flag for flag in flags if flag not in known]
    assert not unknown, f"{argv}: celery {sub} has no option {unknown}"


def check_bridge(argv: list[str]) -> None:
    from bridge.cli import cli

    command = cli.commands[argv[1]]
    flags = [arg.split("=", 1)[0] for arg in argv[2:] if arg.startswith("-")]
    unknown = [flag for flag in flags if flag not in _options(command)]
    assert not unknown, f"{argv}: bridge {argv[1]} has no option {unknown}"


def check_command(argv: list[str]) -> None:
    program = Path(argv[0]).name
    if program == "celery":
        check_celery(argv)
    elif program == "bridge":
        check_bridge(argv)
    elif program == "sh":
        assert argv[1] == "-c"
        check_command(shlex.split(argv[2]))
    elif program == "python":
        assert argv[1] == "-c"
        compile(argv[2], "<healthcheck>", "exec")
    else:
        pytest.fail(f"{argv}: {program} is not an entry point of this project")


@pytest.mark.parametrize(("where", "argv"), all_commands(), ids=lambda v: str(v)[:60])
def test_every_command_is_a_real_entry_point_with_real_options(
    where: str, argv: list[str]
) -> None:
    check_command(argv)


def test_the_entry_points_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_"))}
    bin_dir = Path(sys.executable).parent
    for argv in (["celery", "-A", "bridge", "worker", "--help"],
                 ["celery", "-A", "bridge", "beat", "--help"],
                 ["bridge", "metrics", "--help"]):
        done = subprocess.run([str(bin_dir / argv[0]), *argv[1:]], capture_output=True,
                              text=True, env=env, timeout=60, cwd=DEPLOY)
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        assert "--help" in done.stdout


# --- checking environment variables -------------------------------------------


def _read_by_bridge() -> str:
    sources = [*(ROOT / "bridge").rglob("*.py"), ROOT / "celeryconfig.py"]
    return "\n".join(path.read_text() for path in sources)


def all_variables() -> dict[str, str]:
    """Every variable deploy/ sets for our processes, with where it is set."""
    found: dict[str, str] = {}
    for name, svc in our_services().items():
        for key in svc.get("environment", {}):
            found.setdefault(key, f"compose {name}")
    for path in (DEPLOY / "systemd").glob("*.env"):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                found.setdefault(line.split("=", 1)[0], path.name)
    for document in manifests():
        for key in {**document.get("data", {}), **document.get("stringData", {})}:
            found.setdefault(key, f"kubernetes {document['metadata']['name']}")
    for container in containers():
        for variable in container.get("env", []):
            found.setdefault(variable["name"], f"kubernetes {container['name']}")
    dockerfile = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    for line in dockerfile.splitlines():
        if line.startswith("ENV "):
            for assignment in shlex.split(line[4:]):
                found.setdefault(assignment.split("=", 1)[0], "Dockerfile")
    return found


def test_every_variable_is_one_something_reads() -> None:
    code = _read_by_bridge()
    flower = _flower_options() | {"unauthenticated-api"}
    unread = []
    for name, where in sorted(all_variables().items()):
        if name.startswith("BRIDGE_"):
            read = f'"{name}"' in code
        elif name.startswith("FLOWER_"):
            read = name.removeprefix("FLOWER_").lower().replace("_", "-") in flower
        else:
            read = name in PYTHON_VARIABLES
        if not read:
            unread.append(f"{name} ({where})")
    assert not unread, f"set but read by nothing: {unread}"


# --- checking the shape -------------------------------------------------------


def test_every_file_parses() -> None:
    assert compose()["services"]
    assert UNITS
    for path in UNITS:
        parsed = unit(path)
        assert {"Unit", "Service", "Install"} <= set(parsed.sections()), path.name
        assert parsed["Service"]["Restart"] == "always", path.name
    kinds = [(doc["kind"], doc["metadata"]["name"]) for doc in manifests()]
    assert ("Deployment", "bridge-beat") in kinds
    listed = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    assert sorted(listed["resources"]) == [p.name for p in MANIFESTS]
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies a missing {source}"


def test_exactly_one_beat_everywhere() -> None:
    services = our_services()
    beats = [n for n, s in services.items() if s["command"][3] == "beat"]
    assert beats == ["beat"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
    assert all("--beat" not in s["command"] and "-B" not in s["command"]
               for s in services.values())
    (beat,) = [d for d in manifests() if d["metadata"]["name"] == "bridge-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert all("--beat" not in c["command"] for c in containers())


def test_flower_is_behind_basic_auth_everywhere() -> None:
    assert "FLOWER_BASIC_AUTH" in our_services()["flower"]["environment"]
    assert "flower.env" in unit(DEPLOY / "systemd" / "bridge-flower.service")["Service"][
        "EnvironmentFile"]
    assert "FLOWER_BASIC_AUTH=" in (DEPLOY / "systemd" / "flower.env").read_text()
    (flower,) = [c for c in containers() if c["name"] == "flower"]
    assert [v["name"] for v in flower["env"]] == ["FLOWER_BASIC_AUTH"]


def test_compose_urls_match_the_services_credentials() -> None:
    services = compose()["services"]
    env = our_services()["worker"]["environment"]
    queues = urlsplit(env["BRIDGE_QUEUE_DEFAULT"])
    postgres = services["postgres"]["environment"]
    assert (queues.hostname, queues.username, queues.password, queues.path) == (
        "postgres", postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"])
    broker = urlsplit(env["BRIDGE_BROKER_URL"])
    rabbit = services["rabbitmq"]["environment"]
    assert (broker.hostname, broker.username, broker.password) == (
        "rabbitmq", rabbit["RABBITMQ_DEFAULT_USER"], rabbit["RABBITMQ_DEFAULT_PASS"])
    assert urlsplit(env["BRIDGE_RESULT_BACKEND"]).hostname == "redis"
    for name in our_services():
        assert set(services[name]["depends_on"]) == {"postgres", "rabbitmq", "redis"}
    for name in ("postgres", "redis", "rabbitmq", *our_services()):
        assert "healthcheck" in services[name], f"{name} has no health check"
