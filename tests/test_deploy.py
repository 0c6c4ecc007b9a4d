"""deploy/ without Docker or a cluster: valid, pinned, hardened, and every command real.

Commands are checked against the real command lines: Celery's click
commands (``celery -A bridge worker|beat|inspect``), Flower's options,
``bridge``'s own commands and ``python -m`` modules; environment variables
against what bridge, Flower or Python read. The Kubernetes manifests are
validated against the Kubernetes schemas (``kubernetes-validate``), also as
kustomize builds them from the example env files when ``kubectl`` is there;
the compose file against compose's own schema (``check-jsonschema``). One
real ``--help`` run per entry point proves they start.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement

from bridge.celery.shutdown import DEFAULT_GRACE

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OUR_IMAGE = f"bridge:{PROJECT['version']}"
IMAGE_EXTRAS = ("postgres", "redis", "celery", "flower")
"""What deploy/Dockerfile installs, besides dumb-init."""
PYTHON_VARIABLES = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
CELERY_TEARDOWN = 10.0
"""Celery's own warm shutdown, bounded loosely (tests/test_celery_shutdown.py measures it)."""


# --- reading the files --------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def our_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in compose()["services"].items() if svc.get("image") == OUR_IMAGE
    }


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def unit_environment(path: Path) -> dict[str, str]:
    """The unit's ``Environment=`` assignments (every such line, not only the last)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.removeprefix("Environment=")):
                key, _, value = assignment.partition("=")
                found[key] = value
    return found


def manifests() -> Iterator[dict[str, Any]]:
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                yield document


def deployments() -> Iterator[dict[str, Any]]:
    return (doc for doc in manifests() if doc["kind"] == "Deployment")


def containers() -> Iterator[dict[str, Any]]:
    for document in deployments():
        yield from document["spec"]["template"]["spec"]["containers"]


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return loaded


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")


def dockerfile_json(instruction: str) -> list[str]:
    found = re.search(rf"^{instruction} (\[.+\])$", dockerfile(), re.MULTILINE)
    assert found, f"the Dockerfile has no {instruction} in exec form"
    value: list[str] = json.loads(found[1])
    return value


def env_file(path: Path) -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {key: value for key, value in pairs}


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
    found.append(("Dockerfile CMD", dockerfile_json("CMD")))
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


def check_python(argv: list[str]) -> None:
    if argv[1] == "-c":
        compile(argv[2], "<healthcheck>", "exec")
        return
    assert argv[1] == "-m", argv
    assert argv[2] == "bridge.celery.probe", f"{argv}: not a module of this project"
    from bridge.celery.probe import build_parser

    build_parser().parse_args(argv[3:])


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
        check_python(argv)
    else:
        pytest.fail(f"{argv}: {program} is not an entry point of this project")


@pytest.mark.parametrize(("where", "argv"), all_commands(), ids=lambda v: str(v)[:60])
def test_every_command_is_a_real_entry_point_with_real_options(where: str, argv: list[str]) -> None:
    check_command(argv)


def test_the_entry_points_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_"))}
    bin_dir = Path(sys.executable).parent
    for argv in (
        ["celery", "-A", "bridge", "worker", "--help"],
        ["celery", "-A", "bridge", "beat", "--help"],
        ["bridge", "metrics", "--help"],
        ["python", "-m", "bridge.celery.probe", "--help"],
    ):
        done = subprocess.run(
            [str(bin_dir / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            cwd=DEPLOY,
        )
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
    examples = [*(DEPLOY / "systemd").glob("*.env.example"), *KUBERNETES.glob("*.env.example")]
    for path in examples:
        for key in env_file(path):
            found.setdefault(key, path.name)
    for key in env_file(DEPLOY / "env.example"):
        if key.startswith(("BRIDGE_", "FLOWER_")):
            found.setdefault(key, "env.example")
    for document in manifests():
        for key in {**document.get("data", {}), **document.get("stringData", {})}:
            found.setdefault(key, f"kubernetes {document['metadata']['name']}")
    for container in containers():
        for variable in container.get("env", []):
            found.setdefault(variable["name"], f"kubernetes {container['name']}")
    for line in dockerfile().splitlines():
        if line.startswith("ENV "):
            for assignment in shlex.split(line[4:]):
                found.setdefault(assignment.split("=", 1)[0], "Dockerfile")
    for path in UNITS:
        for key in unit_environment(path):
            found.setdefault(key, path.name)
    return found


def _read_by_prometheus_client() -> str:
    spec = importlib.util.find_spec("prometheus_client")
    assert spec is not None
    assert spec.origin is not None
    return "\n".join(path.read_text() for path in Path(spec.origin).parent.rglob("*.py"))


def test_every_variable_is_one_something_reads() -> None:
    code = _read_by_bridge()
    flower = _flower_options() | {"unauthenticated-api"}
    unread = []
    for name, where in sorted(all_variables().items()):
        if name.startswith("BRIDGE_"):
            read = f'"{name}"' in code
        elif name.startswith("FLOWER_"):
            read = name.removeprefix("FLOWER_").lower().replace("_", "-") in flower
        elif name.startswith("PROMETHEUS_"):
            read = f"'{name}'" in _read_by_prometheus_client() and f'"{name}"' in code
        else:
            read = name in PYTHON_VARIABLES
        if not read:
            unread.append(f"{name} ({where})")
    assert not unread, f"set but read by nothing: {unread}"


# --- valid against the real schemas -------------------------------------------


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_are_valid_kubernetes(path: Path) -> None:
    version = kubernetes_validate.latest_version()
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_kustomization_builds_valid_kubernetes_from_the_example_env_files(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    refused = subprocess.run(
        ["kubectl", "kustomize", str(copy)], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0, "applied without the operator's env files"
    assert "bridge-secrets.env" in refused.stderr
    for example in copy.glob("*.env.example"):
        example.with_suffix("").write_text(example.read_text())
    built = subprocess.run(
        ["kubectl", "kustomize", str(copy)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    documents = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    version = kubernetes_validate.latest_version()
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)
    secrets = {
        doc["metadata"]["name"].rsplit("-", 1)[0] for doc in documents if doc["kind"] == "Secret"
    }
    assert secrets == {"bridge-secrets", "bridge-flower"}


def test_the_compose_file_is_valid_compose() -> None:
    validator = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(validator), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_file_parses() -> None:
    assert compose()["services"]
    assert UNITS
    for path in UNITS:
        parsed = unit(path)
        assert {"Unit", "Service", "Install"} <= set(parsed.sections()), path.name
        assert parsed["Service"]["Restart"] == "always", path.name
    kinds = [(doc["kind"], doc["metadata"]["name"]) for doc in manifests()]
    assert ("Deployment", "bridge-beat") in kinds
    assert sorted(kustomization()["resources"]) == [p.name for p in MANIFESTS]
    for line in dockerfile().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies a missing {source}"


# --- as an operator wants it ----------------------------------------------------


def test_every_container_has_resource_requests_and_limits() -> None:
    for container in containers():
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), (container["name"], kind)
    for name, svc in compose()["services"].items():
        resources = svc["deploy"]["resources"]
        assert {"cpus", "memory"} <= set(resources["limits"]), name
        assert {"cpus", "memory"} <= set(resources["reservations"]), name
    for path in UNITS:
        assert unit(path)["Service"]["MemoryMax"], path.name


def _pinned(image: str) -> bool:
    tag = image.partition(":")[2]
    return bool(re.fullmatch(r"v?\d+\.\d+(\.\d+)?([.-][\w.-]+)?", tag)) or "@sha256:" in image


def test_images_are_pinned() -> None:
    images = [svc["image"] for svc in compose()["services"].values()]
    images += [container["image"] for container in containers()]
    base = re.search(r"^FROM (\S+)", dockerfile(), re.MULTILINE)
    assert base
    images.append(base[1])
    unpinned = [image for image in images if not _pinned(image)]
    assert not unpinned, f"images without an exact version: {unpinned}"
    assert {c["image"] for c in containers()} == {OUR_IMAGE}
    assert kustomization()["images"] == [{"name": "bridge", "newTag": PROJECT["version"]}]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not name==version"
            assert version, f"constraints.txt: {line!r} has no version"
            pins[_canonical(name)] = version
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions these requirements install, as the installed metadata says."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        name = _canonical(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            child = Requirement(text)
            if child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            ):
                todo.append(child)
    return seen


def test_the_image_installs_pinned_dependencies_only() -> None:
    pins = _constraints()
    command = dockerfile()
    assert "-c constraints.txt" in command, "the Dockerfile does not install from the pins"
    assert re.search(r"^COPY .*deploy/constraints.txt", command, re.MULTILINE)
    needed = _closure([Requirement(r) for r in PROJECT["dependencies"]]) | {"dumb-init"}
    for extra in IMAGE_EXTRAS:
        needed |= _closure([Requirement(r) for r in PROJECT["optional-dependencies"][extra]])
    needed.discard("bridge")
    missing = sorted(needed - set(pins))
    assert not missing, f"installed by the image but not pinned: {missing}"
    requirements = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in IMAGE_EXTRAS:
        requirements += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    for requirement in requirements:
        pinned = pins[_canonical(requirement.name)]
        assert requirement.specifier.contains(pinned, prereleases=True), (requirement, pinned)


def test_no_credentials_are_written_in_deploy() -> None:
    text = "\n".join(
        path.read_text()
        for path in DEPLOY.rglob("*")
        if path.is_file() and not path.name.endswith(".example") and path.name != ".gitignore"
    )
    assert "change-me" not in text
    assert not [doc for doc in manifests() if doc["kind"] == "Secret"]
    for name, svc in compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            secret = re.search(r"PASS|SECRET|AUTH|TOKEN", key) or re.search(
                r"://[^/@]*:[^@]*@", str(value)
            )
            if secret:
                assert "${" in str(value), f"compose {name}: {key} is written inline"
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert {".env", "kubernetes/*.env", "systemd/*.env"} <= set(ignored)
    for example in [DEPLOY / "env.example", *DEPLOY.rglob("*.env.example")]:
        for key, value in env_file(example).items():
            assert not re.search(r"://[^/@]*:(?!PASSWORD@)[^@]+@", value), (example, key)
            if re.search(r"PASS|SECRET|AUTH", key):
                assert value == "", f"{example.name}: {key} has a value"


def test_systemd_units_are_hardened() -> None:
    wanted = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "bridge",
    }
    for path in UNITS:
        service = unit(path)["Service"]
        for key, value in wanted.items():
            assert service.get(key) == value, (path.name, key)
        assert "EnvironmentFile" in service, path.name
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    done = subprocess.run(
        [analyze, "verify", *map(str, UNITS)], capture_output=True, text=True, timeout=60
    )
    # The units name /opt/bridge/venv, which this machine has not: only that may be said.
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "is not executable" not in line
    ]
    assert not complaints, complaints


def test_liveness_does_not_hang_on_the_broker() -> None:
    """Workers and beat are probed by bridge's probe, which passes while the broker is down."""
    for container in containers():
        if container["name"] in ("worker", "beat"):
            command = container["livenessProbe"]["exec"]["command"]
            assert command[:3] == ["python", "-m", "bridge.celery.probe"], container["name"]
    for name in ("worker", "beat"):
        test = _health(our_services()[name]["healthcheck"]["test"])
        assert test[:3] == ["python", "-m", "bridge.celery.probe"], name


def test_pid_1_is_an_init_that_signals_celerys_main_process_only() -> None:
    assert dockerfile_json("ENTRYPOINT") == ["dumb-init", "--single-child", "--"]
    assert "dumb-init" in _constraints()
    assert re.search(r"^USER \d+:\d+$", dockerfile(), re.MULTILINE), "a numeric non-root user"


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)?", value)
    assert match, value
    return float(match[1]) * (60 if match[2] == "m" else 1)


def test_the_grace_periods_outlast_the_warm_shutdown() -> None:
    """The warm shutdown ends within the grace plus Celery's teardown; a kill before is waste."""
    compose_grace = _seconds(our_services()["worker"]["stop_grace_period"])
    (worker,) = [d for d in deployments() if d["metadata"]["name"] == "bridge-worker"]
    kubernetes_grace = float(worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    service = unit(DEPLOY / "systemd" / "bridge-worker.service")["Service"]
    systemd_grace = _seconds(service["TimeoutStopSec"])
    assert service["KillMode"] == "mixed", "SIGTERM must reach Celery's main process only"
    assert compose_grace == kubernetes_grace == systemd_grace
    assert compose_grace >= 2 * (DEFAULT_GRACE + CELERY_TEARDOWN)
    assert compose_grace <= 60, "far above what a stop takes: a hung worker lingers"


def test_exactly_one_beat_everywhere() -> None:
    services = our_services()
    beats = [n for n, s in services.items() if s["command"][3] == "beat"]
    assert beats == ["beat"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
    assert all("--beat" not in s["command"] and "-B" not in s["command"] for s in services.values())
    (beat,) = [d for d in manifests() if d["metadata"]["name"] == "bridge-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert all("--beat" not in c["command"] for c in containers())


def test_flower_is_behind_basic_auth_everywhere() -> None:
    assert "FLOWER_BASIC_AUTH" in our_services()["flower"]["environment"]
    assert (
        "flower.env"
        in unit(DEPLOY / "systemd" / "bridge-flower.service")["Service"]["EnvironmentFile"]
    )
    assert "FLOWER_BASIC_AUTH" in env_file(DEPLOY / "systemd" / "flower.env.example")
    (flower,) = [c for c in containers() if c["name"] == "flower"]
    assert [v["name"] for v in flower["env"]] == ["FLOWER_BASIC_AUTH"]
    generated = {g["name"]: g["envs"] for g in kustomization()["secretGenerator"]}
    assert generated == {
        "bridge-secrets": ["bridge-secrets.env"],
        "bridge-flower": ["bridge-flower.env"],
    }
    for files in generated.values():
        assert all((KUBERNETES / f"{name}.example").exists() for name in files)


def test_compose_urls_match_the_services_credentials() -> None:
    services = compose()["services"]
    env = our_services()["worker"]["environment"]
    password = re.compile(r"\$\{(\w+)[:?}]")
    postgres = services["postgres"]["environment"]
    queues = env["BRIDGE_QUEUE_DEFAULT"]
    assert queues.startswith(f"postgresql+psycopg://{postgres['POSTGRES_USER']}:")
    assert queues.endswith(f"@postgres:5432/{postgres['POSTGRES_DB']}")
    assert password.findall(queues) == password.findall(postgres["POSTGRES_PASSWORD"])
    rabbit = services["rabbitmq"]["environment"]
    broker = env["BRIDGE_BROKER_URL"]
    assert broker.startswith(f"amqp://{rabbit['RABBITMQ_DEFAULT_USER']}:")
    assert "@rabbitmq:5672/" in broker
    assert password.findall(broker) == password.findall(rabbit["RABBITMQ_DEFAULT_PASS"])
    assert env["BRIDGE_RESULT_BACKEND"].startswith("redis://redis:")
    for name in our_services():
        assert set(services[name]["depends_on"]) == {"postgres", "rabbitmq", "redis"}
    for name in ("postgres", "redis", "rabbitmq", *our_services()):
        assert "healthcheck" in services[name], f"{name} has no health check"
    example = env_file(DEPLOY / "env.example")
    interpolated = set(password.findall(COMPOSE.read_text()))
    assert interpolated <= set(example), f"not in env.example: {interpolated - set(example)}"


# --- the runner's outcome counters: one directory for workers and exporter ------

MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
WIPE = 'rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db'
"""Empties the directory of the last run's files (prometheus_client wants a clean one)."""


def _compose_multiproc_dir(name: str) -> str:
    """The service's PROMETHEUS_MULTIPROC_DIR, checked to be a named volume mounted there."""
    service = our_services()[name]
    path: str = service["environment"][MULTIPROC]
    mounts = [entry.split(":") for entry in service.get("volumes", [])]
    (volume,) = [m[0] for m in mounts if m[1] == path]
    assert volume in compose()["volumes"], f"compose {name}: {volume} is not a named volume"
    return f"{volume}:{path}"


def _kubernetes_multiproc_dir(container: dict[str, Any], volumes: dict[str, Any]) -> str:
    """The container's PROMETHEUS_MULTIPROC_DIR, checked to be an emptyDir mounted there."""
    (path,) = [v["value"] for v in container.get("env", []) if v["name"] == MULTIPROC]
    (volume,) = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == path]
    assert "emptyDir" in volumes[volume], f"{container['name']}: {volume} is not an emptyDir"
    return f"{volume}:{path}"


def test_every_profile_shares_the_outcome_counters_directory_of_the_workers_and_exporter() -> None:
    """The same PROMETHEUS_MULTIPROC_DIR for workers and `bridge metrics`, emptied per run."""
    # Compose: one named volume in both services, emptied by the worker's
    # entrypoint before it execs Celery under the image's own init.
    assert _compose_multiproc_dir("worker") == _compose_multiproc_dir("metrics")
    worker = our_services()["worker"]
    entrypoint = worker["entrypoint"]
    assert entrypoint[:5] == [*dockerfile_json("ENTRYPOINT"), "sh", "-c"]
    assert entrypoint[5].replace("$$", "$").startswith(WIPE)
    assert entrypoint[5].endswith('exec "$$@"')
    # prometheus_client names the files by process id: one container's ids only.
    assert worker["deploy"]["replicas"] == 1
    # Kubernetes: a sidecar in the worker pod, on the pod's emptyDir (empty per pod).
    (pod,) = [
        d["spec"]["template"] for d in deployments() if d["metadata"]["name"] == "bridge-worker"
    ]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    by_name = {c["name"]: c for c in pod["spec"]["containers"]}
    assert by_name["metrics"]["command"][:2] == ["bridge", "metrics"]
    assert _kubernetes_multiproc_dir(by_name["worker"], volumes) == _kubernetes_multiproc_dir(
        by_name["metrics"], volumes
    )
    port = str(by_name["metrics"]["ports"][0]["containerPort"])
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == port
    # The standalone exporter serves the gauges only: set there, it would refuse to start.
    for document in deployments():
        if document["metadata"]["name"] != "bridge-worker":
            for container in document["spec"]["template"]["spec"]["containers"]:
                assert MULTIPROC not in {v["name"] for v in container.get("env", [])}
    for document in manifests():
        assert MULTIPROC not in document.get("data", {}), "set for every container"
    # systemd: one runtime directory, kept across stops, emptied when the worker starts.
    units = {
        name: unit(DEPLOY / "systemd" / f"bridge-{name}.service")["Service"]
        for name in ("worker", "metrics")
    }
    paths = {
        name: unit_environment(DEPLOY / "systemd" / f"bridge-{name}.service")[MULTIPROC]
        for name in units
    }
    assert paths["worker"] == paths["metrics"]
    for service in units.values():
        assert f"/run/{service['RuntimeDirectory']}" == paths["worker"]
        assert service["RuntimeDirectoryPreserve"] == "yes"
    assert shlex.split(units["worker"]["ExecStartPre"]) == ["/bin/sh", "-c", WIPE]
