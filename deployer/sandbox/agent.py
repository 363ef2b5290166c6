"""The CloudWatch agent of the sandbox's hosts (a named behaviour, on in every profile).

On EC2 the image's CloudWatch agent ships the files its configuration names to CloudWatch Logs
and publishes host metrics. Here each booted host's agent configuration is read from the file
the launch template's user data wrote (/etc/deployer/cloudwatch-agent.json under the host's
root), so what is tested is the fleet template's configuration:

- `logs.logs_collected.files.collect_list`: each file (a path or a glob, under the host's
  root) is followed from its start; complete new lines go to the entry's log group and stream
  (`{instance_id}`, `{hostname}`, `{local_hostname}` and `{ip_address}` filled in), every
  `force_flush_interval` seconds (default 5, scaled on the `aws` profile), one event per line.
  A truncated file (rotation by copytruncate) is followed from its start again. A missing log
  group is created, as the agent does.
- `metrics`: memory and disk use (`mem_used_percent`, disk `used_percent`) every
  `metrics_collection_interval` seconds (scaled), with `append_dimensions` (the instance's
  Auto Scaling group and id) and once more per `aggregation_dimensions` set: per fleet.

It writes to moto's models directly, as the hosts' other data-plane work does: what the agent
sends is not deployer's traffic, and it keeps shipping through API throttling and outages.
"""

from __future__ import annotations

import glob
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.cloudwatch.models import MetricDatum, cloudwatch_backends
from moto.ec2.models import ec2_backends
from moto.logs.models import logs_backends

from deployer.sandbox.layout import ACCOUNT_ID, REGION
from deployer.sandbox.world import WORLD

log = logging.getLogger("deployer.sandbox.agent")
AGENT_CONFIG = Path("etc/deployer/cloudwatch-agent.json")
DEFAULT_FLUSH_S = 5.0
DEFAULT_METRICS_S = 60.0
MAX_EVENTS = 10_000  # per PutLogEvents


@dataclass
class _Tail:
    offset: int = 0
    partial: bytes = b""


@dataclass(frozen=True)
class HostFacts:
    """What the agent fills placeholders and dimensions with."""

    instance_id: str
    ip: str
    tags: dict[str, str]
    image_id: str = ""
    instance_type: str = ""

    @property
    def hostname(self) -> str:
        return "ip-" + self.ip.replace(".", "-") if self.ip else self.instance_id


def read_config(root: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((root / AGENT_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def placeholders(text: str, host: HostFacts) -> str:
    for key, value in (
        ("{instance_id}", host.instance_id),
        ("{hostname}", host.hostname),
        ("{local_hostname}", host.hostname),
        ("{ip_address}", host.ip),
    ):
        text = text.replace(key, value)
    return text


def files_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    logs = config.get("logs") or {}
    collected = (logs.get("logs_collected") or {}).get("files") or {}
    return [entry for entry in collected.get("collect_list") or [] if isinstance(entry, dict)]


def host_facts(instance_id: str, ip: str) -> HostFacts:
    with WORLD.lock:
        try:
            instance = ec2_backends[ACCOUNT_ID][REGION].get_instance(instance_id)
        except Exception:  # noqa: BLE001 - terminated meanwhile: no tags
            return HostFacts(instance_id, ip, {})
        tags = {t["key"]: t["value"] for t in instance.get_tags()}
        return HostFacts(instance_id, ip, tags, instance.image_id, instance.instance_type)


class LogAgent:
    """One agent per booted host, all ticked from the daemon loop."""

    def __init__(
        self,
        booted: Callable[[], dict[str, Path]],
        address_of: Callable[[str], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._booted = booted
        self._address_of = address_of
        self._clock = clock
        self._tails: dict[tuple[str, Path], _Tail] = {}
        self._next_flush: dict[str, float] = {}
        self._next_metrics: dict[str, float] = {}

    def _interval(self, seconds: float) -> float:
        return WORLD.scaled(seconds) if WORLD.behaviours.latency else 0.0

    def tick(self) -> None:
        now = self._clock()
        hosts = self._booted()
        for key in [k for k in self._tails if k[0] not in hosts]:
            del self._tails[key]
        for instance_id, root in hosts.items():
            config = read_config(root)
            if config is None:
                continue
            try:
                self._run(instance_id, root, config, now)
            except Exception:  # one host's agent failing must not stop the others
                log.exception("%s: the CloudWatch agent failed", instance_id)

    def flush(self, instance_id: str, root: Path) -> None:
        """A host going down: its agent ships what is left (as the agent does when stopped)."""
        config = read_config(root)
        if config is not None:
            host = host_facts(instance_id, self._address_of(instance_id))
            for entry in files_of(config):
                self._ship(host, root, entry)
        for key in [k for k in self._tails if k[0] == instance_id]:
            del self._tails[key]

    def _run(self, instance_id: str, root: Path, config: dict[str, Any], now: float) -> None:
        logs = config.get("logs") or {}
        metrics = config.get("metrics")
        flush_due = now >= self._next_flush.get(instance_id, 0.0)
        metrics_due = bool(metrics) and now >= self._next_metrics.get(instance_id, 0.0)
        if not (flush_due or metrics_due):
            return
        host = host_facts(instance_id, self._address_of(instance_id))
        if flush_due:
            flush = float(logs.get("force_flush_interval") or DEFAULT_FLUSH_S)
            # Never more often than the probe floor: a scaled 5 s would flush 10 times a second.
            floor = WORLD.behaviours.probe_floor_s
            self._next_flush[instance_id] = now + max(self._interval(flush), floor)
            for entry in files_of(config):
                self._ship(host, root, entry)
        if metrics_due and isinstance(metrics, dict):
            agent = config.get("agent") or {}
            every = float(
                metrics.get("metrics_collection_interval")
                or agent.get("metrics_collection_interval")
                or DEFAULT_METRICS_S
            )
            self._next_metrics[instance_id] = now + max(self._interval(every), 1.0)
            publish_metrics(host, root, metrics)

    def _ship(self, host: HostFacts, root: Path, entry: dict[str, Any]) -> None:
        pattern = str(entry.get("file_path") or "")
        group = placeholders(str(entry.get("log_group_name") or ""), host)
        stream = placeholders(str(entry.get("log_stream_name") or "{instance_id}"), host)
        if not pattern.startswith("/") or not group:
            return
        for path in sorted(glob.glob(str(root / pattern.lstrip("/")))):
            lines = self._new_lines(host.instance_id, Path(path))
            if lines:
                put_lines(group, stream, lines)

    def _new_lines(self, instance_id: str, path: Path) -> list[str]:
        tail = self._tails.setdefault((instance_id, path), _Tail())
        try:
            size = path.stat().st_size
            if size < tail.offset:  # truncated: follow it from its start again
                tail.offset, tail.partial = 0, b""
            if size == tail.offset:
                return []
            with open(path, "rb") as handle:
                handle.seek(tail.offset)
                data = handle.read(size - tail.offset)
        except OSError:
            return []
        tail.offset += len(data)
        *complete, tail.partial = (tail.partial + data).split(b"\n")
        decoded = (line.decode("utf-8", errors="replace").rstrip("\r") for line in complete)
        return [line for line in decoded if line]


def put_lines(group: str, stream: str, lines: list[str]) -> None:
    now = int(time.time() * 1000)
    with WORLD.lock:
        backend = logs_backends[ACCOUNT_ID][REGION]
        if group not in backend.groups:
            backend.create_log_group(group, {})
        if stream not in backend.groups[group].streams:
            backend.create_log_stream(group, stream)
        for start in range(0, len(lines), MAX_EVENTS):
            batch = lines[start : start + MAX_EVENTS]
            backend.put_log_events(
                group, stream, [{"timestamp": now, "message": line} for line in batch]
            )


def publish_metrics(host: HostFacts, root: Path, metrics: dict[str, Any]) -> None:
    """The measurements this stand-in knows (memory and disk use), with the dimensions the
    configuration appends, and once more per aggregation set.
    """
    collected = metrics.get("metrics_collected") or {}
    values: list[tuple[str, float]] = []
    if "mem_used_percent" in ((collected.get("mem") or {}).get("measurement") or []):
        used = memory_used_percent()
        if used is not None:
            values.append(("mem_used_percent", used))
    if "used_percent" in ((collected.get("disk") or {}).get("measurement") or []):
        usage = shutil.disk_usage(root)
        values.append(("disk_used_percent", 100.0 * usage.used / usage.total))
    if not values:
        return
    known = {
        "${aws:InstanceId}": host.instance_id,
        "${aws:AutoScalingGroupName}": host.tags.get("aws:autoscaling:groupName", ""),
        "${aws:ImageId}": host.image_id,
        "${aws:InstanceType}": host.instance_type,
    }
    appended = {
        name: known.get(str(value), str(value))
        for name, value in (metrics.get("append_dimensions") or {}).items()
    }
    dimension_sets = [appended] + [
        {name: appended[name] for name in names if name in appended}
        for names in metrics.get("aggregation_dimensions") or []
    ]
    namespace = str(metrics.get("namespace") or "CWAgent")
    with WORLD.lock:
        store = cloudwatch_backends[ACCOUNT_ID][REGION]
        for dimensions in dimension_sets:
            if any(not value for value in dimensions.values()):
                continue  # a dimension the host lacks (no group): the agent drops it
            pairs = [{"Name": k, "Value": v} for k, v in sorted(dimensions.items())]
            for name, value in values:
                datum = MetricDatum(namespace, name, value, pairs, None, "Percent")
                store.metric_data.append(datum)


def memory_used_percent() -> float | None:
    """This machine's memory use, as the agent reads /proc/meminfo."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        total = float(fields["MemTotal"].split()[0])
        available = float(fields["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError):
        return None
    return 100.0 * (total - available) / total if total else None


def check_internals() -> list[str]:
    """What moves in moto that this agent relies on (empty when nothing did)."""
    from moto.logs.models import LogsBackend

    moved = []
    for name in ("create_log_group", "create_log_stream", "put_log_events"):
        if not hasattr(LogsBackend, name):
            moved.append(f"LogsBackend.{name}")
    if "groups" not in LogsBackend.__init__.__code__.co_names:
        moved.append("LogsBackend.groups")
    return moved
