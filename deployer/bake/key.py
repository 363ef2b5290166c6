"""The bake key: what an image is made of, as one sha256. An image carrying the key is
reused; change any input (a playbook file, the base AMI, a bake variable, the artifact, the
ansible-core version) and the next bake makes a new one.

The version name is not an input: it is a label that the launch template gives each instance
at boot (boot.env's VERSION). One build is baked once, whatever it is released as: a
rerelease, an A/A release or a build promoted between environments reuses its image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# tag -> what it names, in the order `plan` reports changes
INPUT_TAGS = {
    "deployer:base-ami": "the base AMI",
    "deployer:playbooks": "the playbooks",
    "deployer:bake-vars": "the bake variables",
    "deployer:digest": "the artifact",
    "deployer:ansible": "ansible-core",
}
KEY_TAG = "deployer:bake-key"
SKIPPED_PARTS = {"__pycache__", ".git", ".ansible", ".cache"}


def playbook_files(playbook: Path) -> list[Path]:
    """Every file the bake may use: everything beside the playbook (roles, templates, files,
    library, group_vars), not caches.
    """
    root = playbook.parent
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not SKIPPED_PARTS & set(p.relative_to(root).parts)
    )


def digest_files(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def digest_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def ansible_version() -> str:
    try:
        return metadata.version("ansible-core")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class BakeInputs:
    base_ami: str
    playbooks: str
    variables: str
    artifact: str
    ansible: str

    @staticmethod
    def of(
        base_ami: str, playbook: Path, variables: Mapping[str, Any], artifact_digest: str
    ) -> BakeInputs:
        return BakeInputs(
            base_ami=base_ami,
            playbooks=digest_files(playbook.parent, playbook_files(playbook)),
            variables=digest_json({**variables, "playbook": playbook.name}),
            artifact=artifact_digest,
            ansible=ansible_version(),
        )

    @property
    def tags(self) -> dict[str, str]:
        values = [
            self.base_ami,
            self.playbooks,
            self.variables,
            self.artifact,
            self.ansible,
        ]
        return dict(zip(INPUT_TAGS, values, strict=True))

    @property
    def key(self) -> str:
        return digest_json(self.tags)
