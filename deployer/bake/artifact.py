"""Release artifacts: a directory (packaged here) or an s3:// tarball, identified by sha256.

Packaging is deterministic (sorted names, zeroed times and owners), so the same directory
always has the same digest, and the image for it can be found and reused.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import BadInput

ENTRYPOINT = "run"


@dataclass(frozen=True)
class Artifact:
    path: Path  # the local tarball
    digest: str  # sha256 of the tarball
    source: str  # what deployer.yaml said


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @staticmethod
    def parse(url: str) -> S3Location:
        rest = url.removeprefix("s3://")
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise BadInput(f"artifact.source: '{url}' is not s3://bucket/key")
        return S3Location(bucket, key)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def package_directory(source: Path, cache: Path, label: str) -> Artifact:
    """Tar and gzip `source` deterministically into `cache`; check the app contract first."""
    entry = source / ENTRYPOINT
    if not source.is_dir():
        raise BadInput(f"artifact.source: {source} is not a directory")
    if not entry.is_file() or not os.access(entry, os.X_OK):
        raise BadInput(
            f"artifact.source: {entry} is missing or not executable (the app contract "
            "needs an executable `run` that serves HTTP on $PORT)"
        )
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if any(part in ("__pycache__", ".git") for part in relative.parts):
                continue
            if path.is_file() or path.is_symlink():
                tar.add(path, arcname=str(relative), recursive=False, filter=_reset)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{digest}.tar.gz"
    if not target.exists():
        temporary = target.with_suffix(".tmp")
        temporary.write_bytes(data)
        os.replace(temporary, target)
    return Artifact(path=target, digest=digest, source=label)


def check_tarball(path: Path, label: str) -> None:
    """An s3:// artifact must hold an executable `run` at its top."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            member = tar.getmember(ENTRYPOINT)
    except (tarfile.TarError, KeyError):
        raise BadInput(
            f"artifact.source: {label} is not a tarball with `{ENTRYPOINT}` at its top"
        ) from None
    if not member.mode & 0o111:
        raise BadInput(f"artifact.source: {label}: `{ENTRYPOINT}` is not executable")
