"""Preflight checks that cost seconds (cfn-lint, `ansible-playbook --syntax-check`), run only
when what they check changed: a passed check is remembered under .deployer/ by the sha256 of
its inputs and of the tool's version. A failure is never remembered.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from deployer.bake.runner import syntax_check
from deployer.infra.stacks import TEMPLATE_NAMES, lint_templates


def digest_of(label: str, files: Iterable[Path], *extra: str) -> str:
    digest = hashlib.sha256(label.encode())
    for part in extra:
        digest.update(b"\0" + part.encode())
    for path in sorted(files):
        digest.update(b"\0" + str(path).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


class CheckCache:
    """Keys of checks that passed, in one small JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [str(k) for k in data] if isinstance(data, list) else []

    def run(self, key: str, check: Callable[[], bool | None]) -> bool:
        """Run `check` unless `key` passed before; returns whether it ran. A check that
        returns False passed with something to say again next time: it is not remembered.
        """
        known = self._read()
        if key in known:
            return False
        if check() is False:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checks.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump((known + [key])[-200:], handle)
        os.replace(tmp, self.path)
        return True


def check_templates(
    cache: CheckCache, directory: Path, region: str, report: Callable[[str], None]
) -> None:
    """cfn-lint's errors are bad input; its warnings are told (each run) and let through."""
    files = [directory / f"{name}.yaml" for name in TEMPLATE_NAMES]
    key = digest_of("cfn-lint", files, _version("cfn-lint"), region)

    def lint() -> bool:
        warnings = lint_templates(directory, region)
        for warning in warnings:
            report(f"warning: cfn-lint: {warning}")
        return not warnings

    cache.run(key, lint)


def check_playbook(cache: CheckCache, playbook: Path) -> None:
    if not playbook.is_file():
        syntax_check(playbook)  # says which file is missing
    files = [p for p in playbook.parent.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    key = digest_of("syntax-check", files, _version("ansible-core"), str(playbook))
    cache.run(key, lambda: syntax_check(playbook))
