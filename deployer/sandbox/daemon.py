"""The sandbox process: moto server + data plane (hosts, prober, load-balancer fronts).

Started by `deployer sandbox up` as `python -m deployer.sandbox.daemon`; stopped with SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import StateReason
from moto.server import DomainDispatcherApplication, create_backend_app
from moto.ssm.models import ssm_backends

from deployer.sandbox import (
    alarms,
    api_rules,
    ec2_rules,
    image_catalog,
    latency,
    lifecycle,
    logs_api,
    patches,
    run_command,
    sessions,
    stack_deletes,
    stack_updates,
    stacks,
    step_functions,
)
from deployer.sandbox.agent import LogAgent
from deployer.sandbox.alarms import Evaluator
from deployer.sandbox.cloudwatch_clock import Clock
from deployer.sandbox.front import Fronts
from deployer.sandbox.gateway import Gateway, Listener
from deployer.sandbox.hosts import HostManager, Launch
from deployer.sandbox.layout import ACCOUNT_ID, CREDENTIALS, REGION, Layout, write_json
from deployer.sandbox.prober import Prober
from deployer.sandbox.profile import behaviours_for
from deployer.sandbox.world import WORLD

log = logging.getLogger("deployer.sandbox")
TICK_S = 0.1


def running_instances() -> dict[str, Launch]:
    """Instance id -> launch of every running instance, read from moto's model directly:
    the data plane keeps working through API throttling and outages, as on AWS.
    """
    found: dict[str, Launch] = {}
    with WORLD.lock:
        backend = ec2_backends[ACCOUNT_ID][REGION]
        for instance in list(backend.all_instances()):
            if instance.state != "running":
                continue
            key = backend.key_pairs.get(instance.key_name) if instance.key_name else None
            public = getattr(key, "material_public", b"") or b""
            found[instance.id] = Launch(
                image_id=instance.image_id,
                public_key=public.decode() if isinstance(public, bytes) else str(public),
                user_data=_user_data(instance),
            )
    return found


def instance_initiated_shutdown(instance_id: str) -> None:
    """The instance ran `shutdown`: EC2 stops it, or terminates it when it was launched with
    InstanceInitiatedShutdownBehavior=terminate.
    """
    with WORLD.lock:
        backend = ec2_backends[ACCOUNT_ID][REGION]
        try:
            instance = backend.get_instance(instance_id)
        except Exception:  # noqa: BLE001 - gone meanwhile
            return
        if instance.state != "running":
            return
        if instance.instance_initiated_shutdown_behavior == "terminate":
            instance.terminate()
        else:
            instance.stop()
        instance.state_reason = StateReason(
            "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
            "Client.InstanceInitiatedShutdown",
        )


def has_settings(root: Path) -> bool:
    """Whether any SSM parameter is under the path the host's boot.env names."""
    boot = root / "etc/deployer/boot.env"
    path = ""
    if boot.is_file():
        for line in boot.read_text().splitlines():
            if line.startswith("SETTINGS_PATH="):
                path = line.partition("=")[2].strip()
    if not path:
        return False
    try:
        with WORLD.lock:
            parameters = ssm_backends[ACCOUNT_ID][REGION]._parameters
            return any(True for _ in parameters.get_keys_beginning_with(path, False))
    except AttributeError:  # moto moved it: run the playbook, as on EC2
        return True


def _user_data(instance: Any) -> str:
    """The user data as text (moto keeps it base64-encoded)."""
    raw = instance.user_data
    if not raw:
        return ""
    value = raw[0] if isinstance(raw, list) else raw
    try:
        return base64.b64decode(str(value)).decode(errors="replace")
    except (ValueError, TypeError):
        return ""


def wait_until_serving(endpoint: str, deadline_s: float = 15.0) -> None:
    stop_at = time.monotonic() + deadline_s
    while True:
        try:
            # loopback (bandit B310)
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # nosec B310
                return
        except OSError:
            if time.monotonic() > stop_at:
                raise
            time.sleep(0.05)


def _latency(seconds: float) -> Any:
    return lambda: WORLD.scaled(seconds) if WORLD.behaviours.latency else 0.0


def serve(layout: Layout, port: int, time_scale: float, profile: str, overrides: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    WORLD.time_scale = time_scale
    WORLD.profile = profile
    WORLD.configure(behaviours_for(profile, overrides or None))
    hosts = HostManager(
        layout,
        boot_delay=_latency(latency.BOOT_S),
        on_boot=lambda i, start, end: WORLD.span("boot", i, start, end),
        time_scale=time_scale,
    )
    hosts.on_shutdown = instance_initiated_shutdown
    hosts.shutdown_scale = lambda: WORLD.behaviours.shutdown_time_scale or WORLD.time_scale
    prober = Prober(
        hosts.endpoint_of,
        time_scale,
        registration_delay=_latency(latency.TARGET_REGISTRATION_S),
        on_healthy=lambda i, start, end: WORLD.span(
            "target-healthy", i, time.time() - (end - start), time.time()
        ),
        floor_s=lambda: WORLD.behaviours.probe_floor_s,
    )
    patches.apply(prober.lookup, hosts.capture, hosts.console_of)
    lifecycle.apply()
    stacks.apply()
    stack_deletes.apply()
    stack_updates.apply()
    ec2_rules.apply()
    sessions.apply()
    api_rules.apply()
    alarms.apply()
    logs_api.apply()
    run_command.apply(hosts.booted)
    image_catalog.apply(layout.image_dir)  # after patches.py's capture, which it publishes
    log_agent = LogAgent(hosts.booted, hosts.address_of)
    hosts.before_gone = log_agent.flush
    # The ALB's 60 s idle timeout, scaled; never under 10 s, so that a busy machine's slow
    # answer is not taken for a hung target.
    fronts = Fronts(layout, prober.lookup, hosts.endpoint_of, max(10.0, 60.0 * time_scale))
    # CloudWatch's clock is set at start: its periods must not change length under a reader.
    cloudwatch_scale = WORLD.behaviours.cloudwatch_scale(time_scale)
    behaviours = WORLD.behaviours
    clock = Clock(
        cloudwatch_scale,
        behaviours.metric_publication_delay_s,
        behaviours.metric_publication_spread_s,
        behaviours.metric_late_fraction,
        behaviours.metric_late_s,
        behaviours.seed,
    )
    evaluator = Evaluator(alarms.install(clock), prober.lookup)
    step_functions.apply(port, cloudwatch_scale, dict(CREDENTIALS))

    gateway = Gateway(DomainDispatcherApplication(create_backend_app), WORLD, profile)
    listener = Listener(gateway, "127.0.0.1", port, WORLD)
    gateway.on_outage = listener.outage
    listener.start()
    endpoint = f"http://127.0.0.1:{port}"
    wait_until_serving(endpoint)
    hosts.has_settings = has_settings
    hosts.aws_env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
    }
    write_json(
        layout.state_file,
        {
            "pid": os.getpid(),
            "endpoint": endpoint,
            "region": REGION,
            "time_scale": time_scale,
            "cloudwatch_time_scale": cloudwatch_scale,
            "profile": profile,
            "started_at": time.time(),
        },
    )
    log.info("sandbox serving on %s (profile %s, time scale %s)", endpoint, profile, time_scale)
    try:
        while not stop.is_set():
            try:
                WORLD.tick()
                hosts.reconcile(running_instances())
                prober.tick()
                fronts.reconcile()
                log_agent.tick()
                evaluator.tick()  # CloudWatch: host counts, and alarms once a scaled minute
            except Exception:  # keep serving; the log says what went wrong
                log.exception("data plane tick failed")
            stop.wait(TICK_S)
    finally:
        log.info("sandbox stopping")
        layout.state_file.unlink(missing_ok=True)
        fronts.close()
        prober.close()
        run_command.close()
        hosts.shut_down_all()
        listener.stop()
        log.info("sandbox stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="deployer-sandbox")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--behaviours", default="", help="JSON text or a JSON file")
    args = parser.parse_args(argv)
    # moto's 1,300 public AMIs make every DescribeImages scan them (about a second each):
    # the sandbox serves the images its users make. Base AMIs resolve through SSM as on AWS.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    layout = Layout(root=Path(args.dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    serve(layout, args.port, args.time_scale, args.profile, args.behaviours)


if __name__ == "__main__":
    main()
