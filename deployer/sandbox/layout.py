"""Where the sandbox keeps its state: .deployer/sandbox/ under the working directory."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
CREDENTIALS = {
    "aws_access_key_id": "sandbox",
    "aws_secret_access_key": "sandbox",
}


@dataclass(frozen=True)
class Layout:
    root: Path

    @staticmethod
    def for_workdir(workdir: Path) -> Layout:
        return Layout(workdir.resolve() / ".deployer" / "sandbox")

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def fronts_file(self) -> Path:
        return self.root / "fronts.json"

    @property
    def log_file(self) -> Path:
        return self.root / "daemon.log"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def images(self) -> Path:
        return self.root / "images"

    def host_dir(self, instance_id: str) -> Path:
        return self.hosts / instance_id

    def host_root(self, instance_id: str) -> Path:
        return self.host_dir(instance_id) / "root"

    def image_dir(self, image_id: str) -> Path:
        return self.images / image_id


def write_json(path: Path, data: Any) -> None:
    """Atomic: write a temp file beside it, then rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
