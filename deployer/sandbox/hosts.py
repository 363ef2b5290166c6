"""Local hosts standing for EC2 instances: a root directory, a loopback address, the app process.

A host boots from the content captured when its image was created (see patches.py), reads
/etc/deployer/app.env like the systemd unit would on EC2, and runs the app's `run`.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deployer.core.hostkeys import console_text
from deployer.sandbox import cloudinit, units
from deployer.sandbox.first_boot import BOOT_ENV, CONFIGURE, HOST_KEY, Launch, first_boot
from deployer.sandbox.layout import Layout, write_json
from deployer.sandbox.processes import stop_process_group

log = logging.getLogger("deployer.sandbox.hosts")


@dataclass(frozen=True)
class Address:
    ip: str
    port_offset: int  # 0 where each host has its own loopback address


def loopback_aliases_work() -> bool:
    """Linux routes all of 127.0.0.0/8 to lo; some systems (macOS) only answer on 127.0.0.1."""
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def address_free(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


@dataclass
class Host:
    instance_id: str
    ip: str
    port: int
    process: subprocess.Popen[bytes] | None = None


class HostManager:
    """Reconciles local hosts with the instances moto reports running."""

    def __init__(
        self,
        layout: Layout,
        boot_delay: Callable[[], float] = lambda: 0.0,
        on_boot: Callable[[str, float, float], None] = lambda _id, _start, _end: None,
        time_scale: float = 1.0,
    ) -> None:
        self.layout = layout
        self.time_scale = time_scale
        # An instance that shut itself down (user data's `shutdown`): stop or terminate it.
        self.on_shutdown: Callable[[str], None] = lambda _id: None
        self.shutdown_scale: Callable[[], float] = lambda: self.time_scale
        self._bin = cloudinit.install_shim(layout.root / "bin")
        self._boot_delay = boot_delay  # how long an instance boots before its app starts
        self.aws_env: dict[str, str] = {}  # what configure at boot needs to reach the sandbox
        self.has_settings: Callable[[Path], bool] = lambda _root: True
        # Told of a host about to go, its app stopped: the CloudWatch agent's last flush.
        self.before_gone: Callable[[str, Path], None] = lambda _id, _root: None
        self._on_boot = on_boot
        self._running_since: dict[str, float] = {}
        self._hosts: dict[str, Host] = {}
        self._lock = threading.Lock()
        self._aliases = loopback_aliases_work()
        self._net = random.Random().randint(64, 250)  # so two sandboxes rarely share addresses
        self._next = 0

    def endpoint_of(self, instance_id: str) -> tuple[str, int] | None:
        with self._lock:
            host = self._hosts.get(instance_id)
            return (host.ip, host.port) if host else None

    def booted(self) -> dict[str, Path]:
        """Instance id -> root of every host that has booted (and not shut down)."""
        with self._lock:
            ids = list(self._hosts)
        return {i: self.layout.host_root(i) for i in ids}

    def address_of(self, instance_id: str) -> str:
        with self._lock:
            host = self._hosts.get(instance_id)
        return host.ip if host else ""

    def _allocate(self, app_port: int) -> tuple[str, int]:
        """A loopback address (and port) where nothing listens yet.

        Another sandbox on this machine may use the same addresses: probing its app instead
        of ours would report the wrong health, so an address in use is skipped.
        """
        if not self._aliases:
            with socket.socket() as probe:  # one port of its own on 127.0.0.1
                probe.bind(("127.0.0.1", 0))
                return "127.0.0.1", probe.getsockname()[1]
        for _ in range(10_000):
            n = self._next
            self._next += 1
            ip = f"127.{self._net}.{n // 250}.{n % 250 + 2}"
            if address_free(ip, app_port):
                return ip, 0
        raise RuntimeError("no free loopback address for a sandbox host")

    def reconcile(self, running: dict[str, Launch]) -> None:
        """`running` maps instance id -> its launch for every instance in state running."""
        with self._lock:
            known = set(self._hosts)
        now = time.time()
        delay = self._boot_delay()
        for instance_id, launch in running.items():
            since = self._running_since.setdefault(instance_id, now)
            if instance_id not in known and now - since >= delay:
                self._boot(instance_id, launch)
                self._on_boot(instance_id, since, now)
        for instance_id in set(self._running_since) - set(running):
            del self._running_since[instance_id]
        for instance_id in known - set(running):
            self._shut_down(instance_id)
        for instance_id in known & set(running):
            if cloudinit.shutdown_due(self.layout.host_dir(instance_id)):
                log.info("%s shut itself down", instance_id)
                self.on_shutdown(instance_id)

    def _boot(self, instance_id: str, launch: Launch) -> None:
        image_id = launch.image_id
        host_dir = self.layout.host_dir(instance_id)
        root = self.layout.host_root(instance_id)
        image = self.layout.image_dir(image_id)
        if image.is_dir():
            shutil.copytree(image, root, symlinks=True, dirs_exist_ok=True)
        else:
            root.mkdir(parents=True, exist_ok=True)
        first_boot(root, instance_id, launch)
        cloudinit.run_user_data(root, host_dir, launch.user_data, self._bin, self.shutdown_scale())
        app_env = units.app_environment(root)
        ip, port = self._allocate(int(app_env.get("PORT", "8080")))
        host = Host(instance_id, ip, port)
        with self._lock:
            self._hosts[instance_id] = host
        if (root / CONFIGURE).is_file() and self.has_settings(root):
            # The image configures itself at boot, then the app starts. Without any setting
            # the playbook would write the app.env the bake wrote: the app does not wait.
            threading.Thread(
                target=self._configure_then_start, args=(host, root), daemon=True
            ).start()
        elif app_env:
            self._started(self._start_app(host, root, app_env))
        write_json(
            host_dir / "host.json",
            {
                "instance_id": instance_id,
                "image_id": image_id,
                "root": str(root),
                "ip": ip,
                "port": host.port,
            },
        )
        log.info("booted %s from %s on %s:%s", instance_id, image_id, ip, host.port)

    def _configure_then_start(self, host: Host, root: Path) -> None:
        """What the image's deployer-configure unit does on EC2: configure.yml, run locally
        against the sandbox's SSM, before the app starts.
        """
        if not self._configure(host, root):
            return  # as on EC2: the app unit requires the configure unit
        app_env = units.app_environment(root)
        if app_env:
            self._started(self._start_app(host, root, app_env))

    def _configure(self, host: Host, root: Path) -> bool:
        """Run the image's configure.yml as its unit would; whether it succeeded."""
        configure = root / CONFIGURE
        boot = root / BOOT_ENV
        env = {
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
            "HOME": str(self.layout.host_dir(host.instance_id)),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(self.layout.host_dir(host.instance_id) / "tmp"),
            **self.aws_env,
            **(units.read_env_file(boot) if boot.is_file() else {}),
        }
        extra = {
            "deployer_root": str(root),
            "deployer_sandbox": True,
            "ansible_python_interpreter": sys.executable,
        }
        log_path = units.output_path(
            root, units.CONFIGURE_UNIT, self.layout.host_dir(host.instance_id) / "configure.log"
        )
        if log_path is None:
            return False
        with open(log_path, "ab") as out:
            done = subprocess.run(
                units.configure_command(configure, extra),
                cwd=configure.parent,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        if done.returncode != 0:
            log.warning("%s: configure at boot failed (see %s)", host.instance_id, log_path)
            return False
        return True

    def _started(self, host: Host) -> None:
        with self._lock:
            if host.instance_id in self._hosts:
                self._hosts[host.instance_id] = host
                return
        if host.process is not None:  # shut down while it booted
            stop_process_group(host.process.pid, child=host.process)

    def _start_app(self, host: Host, root: Path, env_file: dict[str, str]) -> Host:
        app_dir = root / env_file.get("APP_DIR", "/opt/app/current").lstrip("/")
        run = app_dir / "run"
        if not os.access(run, os.X_OK):
            log.warning("%s: %s is not executable; the app does not start", host.instance_id, run)
            return host
        port = host.port or int(env_file.get("PORT", "8080"))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHON": sys.executable,
            **env_file,
            "HOST": host.ip,
            "PORT": str(port),
            "INSTANCE_ID": host.instance_id,
        }
        log_path = units.output_path(
            root, units.app_unit(root), self.layout.host_dir(host.instance_id) / "app.log"
        )
        if log_path is None:
            return host
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                [str(run)],
                cwd=app_dir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (self.layout.host_dir(host.instance_id) / "app.pid").write_text(str(process.pid))
        return Host(host.instance_id, host.ip, port, process)

    def _shut_down(self, instance_id: str) -> None:
        with self._lock:
            host = self._hosts.pop(instance_id, None)
        if host and host.process:
            stop_process_group(host.process.pid, child=host.process)
        if host:
            try:
                self.before_gone(instance_id, self.layout.host_root(instance_id))
            except Exception:  # its logs are not worth keeping a host for
                log.exception("%s: the last flush failed", instance_id)
        shutil.rmtree(self.layout.host_dir(instance_id), ignore_errors=True)
        log.info("terminated %s", instance_id)

    def console_of(self, instance_id: str) -> str:
        """What the instance printed on its console: cloud-init's host keys, once booted."""
        public = self.layout.host_root(instance_id) / HOST_KEY.with_suffix(".pub")
        if not public.is_file():
            return ""
        key = " ".join(public.read_text().split()[:2])
        return console_text([key])

    def shut_down_all(self) -> None:
        with self._lock:
            ids = list(self._hosts)
        for instance_id in ids:
            self._shut_down(instance_id)

    def capture(self, instance_id: str, image_id: str) -> None:
        """Snapshot a host's root as an image's content (called from moto's CreateImage)."""
        root = self.layout.host_root(instance_id)
        target = self.layout.image_dir(image_id)
        if root.is_dir():
            shutil.copytree(root, target, symlinks=True, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
        log.info("captured %s as %s", instance_id, image_id)
