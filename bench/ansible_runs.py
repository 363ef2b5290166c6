"""What Ansible costs per bake and per instance boot, measured on this machine:

    python bench/ansible_runs.py [--json]

- module runs (each one a Python interpreter on the builder or the instance, 0.3-0.4 s of CPU
  on a 2-core machine) and CPU seconds of `playbooks/bake.yml` + deployer's sanitize play, run
  as a sandbox bake runs them (ansible-runner, local connection into a directory);
- the same for `configure.yml` at boot, as the image's deployer-configure unit runs it: with
  the environment's settings in SSM (read from a moto server on loopback);
- boot to healthy: from the configure unit's start to the app answering /healthz.

Goals: at most 35 module runs per bake and 5 per boot. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer.bake.artifact import package_directory  # noqa: E402
from deployer.bake.runner import BuilderAccess, run_playbook  # noqa: E402
from deployer.sandbox import units  # noqa: E402


def counting_interpreter(where: Path) -> tuple[Path, Path]:
    """A Python that counts its starts: Ansible runs one per module."""
    counter = where / "module-runs"
    counter.write_text("")
    shim = where / "python-counting"
    shim.write_text(f'#!/bin/sh\necho run >> "{counter}"\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    return shim, counter


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines())


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bake(where: Path, shim: Path, counter: Path) -> dict[str, float]:
    root = where / "builder"
    root.mkdir()
    artifact = package_directory(REPO / "examples" / "hello", where / "cache", "hello")
    access = BuilderAccess(host="local", connection="local", root=str(root), sandbox=True)
    variables = {
        "app_name": "hello",
        "app_port": 8080,
        "artifact_digest": artifact.digest,
        "artifact_url": artifact.path.as_uri(),
        "ansible_python_interpreter": str(shim),
    }
    cpu, started = children_cpu(), time.monotonic()
    run_playbook(REPO / "playbooks" / "bake.yml", access, variables, sanitize=True)
    return {
        "module_runs": runs(counter),
        "cpu_s": round(children_cpu() - cpu, 2),
        "wall_s": round(time.monotonic() - started, 2),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def boot(where: Path, shim: Path, counter: Path) -> dict[str, float]:
    """configure.yml at boot with settings and a log group, then the app until healthy."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env_aws = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        ssm = boto3.client("ssm", region_name="us-east-1", **_client_args(env_aws))
        ssm.put_parameter(Name="/deployer/hello/bench/GREETING", Value="hi", Type="String")
        root = where / "instance"
        shutil.copytree(where / "builder", root, symlinks=True)
        (root / "etc/deployer/boot.env").write_text(
            "SETTINGS_PATH=/deployer/hello/bench/\nAWS_REGION=us-east-1\n"
            "LOG_GROUP=/deployer/hello/bench\nVERSION=v-bench\n"
        )
        configure = root / "opt/deployer/configure/configure.yml"
        counter.write_text("")
        cpu, started = children_cpu(), time.monotonic()
        subprocess.run(
            units.configure_command(
                configure,
                {
                    "deployer_root": str(root),
                    "deployer_sandbox": True,
                    "ansible_python_interpreter": str(shim),
                },
            ),
            cwd=configure.parent,
            env={
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(where),
                "ANSIBLE_LOCAL_TEMP": str(where / "tmp"),
                **env_aws,
                **units.read_env_file(root / "etc/deployer/boot.env"),
            },
            check=True,
            stdout=subprocess.DEVNULL,
        )
        configured = time.monotonic()
        configure_cpu = children_cpu() - cpu
        app_env = units.app_environment(root)
        app_port = free_port()
        app = subprocess.Popen(
            [str(root / "opt/app/current/run")],
            env={**app_env, "PYTHON": sys.executable, "HOST": "127.0.0.1", "PORT": str(app_port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            healthy_at = _wait_healthy(f"http://127.0.0.1:{app_port}/healthz")
            version = urllib.request.urlopen(f"http://127.0.0.1:{app_port}/", timeout=2).read()
        finally:
            app.terminate()
            app.wait(timeout=10)
        return {
            "module_runs": runs(counter),
            "configure_cpu_s": round(configure_cpu, 2),
            "configure_s": round(configured - started, 2),
            "boot_to_healthy_s": round(healthy_at - started, 2),
            "serves": version.decode().strip(),
        }
    finally:
        server.stop()


def _client_args(env: dict[str, str]) -> dict[str, str]:
    return {
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }


def _wait_healthy(url: str, deadline_s: float = 30.0) -> float:
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return time.monotonic()
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer 200 within {deadline_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON document")
    args = parser.parse_args()
    where = Path(tempfile.mkdtemp(prefix="deployer-bench-ansible-"))
    try:
        shim, counter = counting_interpreter(where)
        figures = {"bake": bake(where, shim, counter), "boot": boot(where, shim, counter)}
    finally:
        shutil.rmtree(where, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    b, o = figures["bake"], figures["boot"]
    print(f"bake: {b['module_runs']} module runs, {b['cpu_s']} s CPU, {b['wall_s']} s")
    print(
        f"boot: {o['module_runs']} module runs, configure {o['configure_cpu_s']} s CPU "
        f"({o['configure_s']} s), boot to healthy {o['boot_to_healthy_s']} s; "
        f"serves '{o['serves']}'"
    )


if __name__ == "__main__":
    main()
