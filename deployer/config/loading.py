"""Reading deployer.yaml: YAML that refuses a key given twice, then the model; every failure is
a ConfigError naming the file, the field and the reason (exit 2).

Relative paths in the file (artifact source, playbook, templates) are resolved against the
directory that holds the file, so `deployer -c path/to/deployer.yaml` works from anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from deployer.config.model import DeployConfig
from deployer.errors import ConfigError


class LoadedConfig(BaseModel):
    """A validated config and the directory its relative paths are resolved against."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    path: Path
    spec: DeployConfig

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith(("function-", "tagged-union["))]
    # Drop discriminator tags such as 'aws' in ('target', 'aws', 'region').
    if len(parts) >= 2 and parts[0] == "target" and parts[1] in ("aws", "sandbox"):
        parts.pop(1)
    return ".".join(parts) or "(top level)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(key, seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"{key!r} on lines {first} and {again}")
        self.key, self.first, self.again = key, first, again


def load_config(path: Path) -> LoadedConfig:
    """Read and validate deployer.yaml; every failure is a ConfigError naming file, field, why."""
    name = str(path)
    if not path.is_file():
        raise ConfigError(name, "", "file not found (pass -c PATH or run where deployer.yaml is)")
    try:
        text = path.read_text(encoding="utf-8")
        # bandit B506: _UniqueKeyLoader is a yaml.SafeLoader (no object construction)
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  # nosec B506
    except _DuplicateKey as dup:
        raise ConfigError(
            name,
            f"lines {dup.first} and {dup.again}",
            f"the key '{dup.key}' is given twice (YAML would silently keep the last one)",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(name, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(name, "", "must be a mapping of settings")
    try:
        spec = DeployConfig.model_validate(raw)
    except ValidationError as exc:
        first, *rest = exc.errors()
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown field"
        more = f" (and {len(rest)} more problem(s))" if rest else ""
        raise ConfigError(name, _field_path(first["loc"]), reason + more) from None
    return LoadedConfig(path=path.resolve(), spec=spec)


def json_schema() -> dict[str, Any]:
    return DeployConfig.model_json_schema()
