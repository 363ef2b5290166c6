"""The sandbox process: moto server + data plane (hosts, prober, load-balancer fronts).

Started by `deployer sandbox up` as `python -m deployer.sandbox.daemon`; stopped with SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from deployer.sandbox import patches
from deployer.sandbox.front import Fronts
from deployer.sandbox.hosts import HostManager
from deployer.sandbox.layout import CREDENTIALS, REGION, Layout, write_json
from deployer.sandbox.prober import Prober

log = logging.getLogger("deployer.sandbox")
TICK_S = 0.1


def running_instances(ec2: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    filters = [{"Name": "instance-state-name", "Values": ["running"]}]
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                found[instance["InstanceId"]] = instance["ImageId"]
    return found


def wait_until_serving(endpoint: str, deadline_s: float = 15.0) -> None:
    stop_at = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return
        except OSError:
            if time.monotonic() > stop_at:
                raise
            time.sleep(0.05)


def serve(layout: Layout, port: int, time_scale: float) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    hosts = HostManager(layout)
    prober = Prober(hosts.endpoint_of, time_scale)
    patches.apply(prober.lookup, hosts.capture)
    fronts = Fronts(layout, prober.lookup, hosts.endpoint_of)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    wait_until_serving(endpoint)
    ec2 = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard"}),
        **CREDENTIALS,
    )
    write_json(
        layout.state_file,
        {
            "pid": os.getpid(),
            "endpoint": endpoint,
            "region": REGION,
            "time_scale": time_scale,
            "started_at": time.time(),
        },
    )
    log.info("sandbox serving on %s (time scale %s)", endpoint, time_scale)
    try:
        while not stop.is_set():
            try:
                hosts.reconcile(running_instances(ec2))
                prober.tick()
                fronts.reconcile()
            except Exception:  # keep serving; the log says what went wrong
                log.exception("data plane tick failed")
            stop.wait(TICK_S)
    finally:
        log.info("sandbox stopping")
        layout.state_file.unlink(missing_ok=True)
        fronts.close()
        prober.close()
        hosts.shut_down_all()
        server.stop()
        log.info("sandbox stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="deployer-sandbox")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    layout = Layout(root=Path(args.dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    serve(layout, args.port, args.time_scale)


if __name__ == "__main__":
    main()
