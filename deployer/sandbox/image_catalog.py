"""Images that the sandboxes of one machine share, by bake key: `DEPLOYER_SANDBOX_IMAGE_CATALOG`
names the directory (unset or empty: no catalog, every sandbox is an account of its own).

On AWS an account keeps its images, so a build baked once is reused by every later release,
whatever environment, pipeline or test run asks for it. Each sandbox is a fresh account and
would bake the same build again: 30 to 40 s of Ansible's CPU each time. With a catalog:

- an image a sandbox makes (CreateImage with a `deployer:bake-key` tag) is also published
  to the catalog, its content and its tags, atomically (the first publisher of a key wins);
- a sandbox asked for images of a bake key it has never seen (DescribeImages filtered on that
  tag) registers the catalog's image in its own EC2 first, available at once, with the same
  tags and content, as the image an account already has. Each key is taken at most once per
  sandbox, so an image deregistered there (`deployer gc`) stays gone.

The product is unchanged by this: it looks for the bake key's image and reuses it, exactly as
it does on AWS. Tests whose subject is the bake turn the catalog off.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto.ec2.models.amis import AmiBackend

from deployer.sandbox.patching import Patches
from deployer.sandbox.world import WORLD

log = logging.getLogger("deployer.sandbox.images")
CATALOG_ENV = "DEPLOYER_SANDBOX_IMAGE_CATALOG"
KEY_TAG = "deployer:bake-key"
_FILTER = f"tag:{KEY_TAG}"


class Catalog:
    """The shared directory: `<key>/image.json` (name, description, tags) and `<key>/content`."""

    def __init__(self, root: Path, image_dir: Callable[[str], Path]) -> None:
        self.root = root
        self._image_dir = image_dir  # this sandbox's content of an image id
        self._seen: set[str] = set()  # keys this sandbox made or took: never taken again
        self._lock = threading.Lock()

    def publish(self, image_id: str, name: str, description: str, tags: dict[str, str]) -> None:
        key = tags.get(KEY_TAG, "")
        if not key:
            return
        with self._lock:
            self._seen.add(key)
        if (self.root / key).exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".publishing-"))
        try:
            content = self._image_dir(image_id)
            if content.is_dir():
                shutil.copytree(content, staging / "content", symlinks=True)
            else:
                (staging / "content").mkdir()
            meta = {"name": name, "description": description, "tags": tags}
            (staging / "image.json").write_text(json.dumps(meta, sort_keys=True))
            os.rename(staging, self.root / key)  # atomic; fails if another sandbox won
            log.info("published %s (bake key %s) to the image catalog", image_id, key[:12])
        except OSError:
            pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def take(self, backend: AmiBackend, keys: Iterable[str]) -> None:
        """Register in `backend` the catalog's image of each key this sandbox has not seen."""
        for key in keys:
            with self._lock:
                if key in self._seen:
                    continue
                self._seen.add(key)
            entry = self.root / key
            try:
                meta = json.loads((entry / "image.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not in the catalog (yet): this sandbox bakes it
            with WORLD.lock:
                ami = backend.register_image(meta["name"], meta["description"])
                tags = dict(meta["tags"])
                ami.add_tags(tags)
                ami.ebs_snapshot.add_tags(tags)  # as CreateImage's TagSpecifications would
            target = self._image_dir(ami.id)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(entry / "content", target, symlinks=True)
            log.info("took %s (bake key %s) from the image catalog", ami.id, key[:12])


def _create_image(self: AmiBackend, *args: Any, **kwargs: Any) -> Any:
    ami = PATCHES.original("create_image")(self, *args, **kwargs)
    if _CATALOG is not None:
        tags = {t["key"]: t["value"] for t in ami.get_tags()}
        _CATALOG.publish(ami.id, ami.name or "", ami.description or "", tags)
    return ami


def _describe_images(self: AmiBackend, *args: Any, **kwargs: Any) -> Any:
    filters = kwargs.get("filters")  # moto's DescribeImages passes it by name
    if _CATALOG is not None and filters and _FILTER in filters:
        values = filters[_FILTER]
        _CATALOG.take(self, values if isinstance(values, list) else [values])
    return PATCHES.original("describe_images")(self, *args, **kwargs)


_CATALOG: Catalog | None = None
PATCHES = Patches()
PATCHES.add("create_image", AmiBackend, "create_image", _create_image)
PATCHES.add("describe_images", AmiBackend, "describe_images", _describe_images)


def check_internals() -> list[str]:
    """What moved in moto that these patches rely on (empty when nothing did)."""
    moved = []
    for key, prefix in [
        ("describe_images", ["self", "ami_ids", "filters"]),
        ("create_image", ["self", "instance_id", "name", "description"]),
    ]:
        params = list(inspect.signature(PATCHES.original(key)).parameters)
        if params[: len(prefix)] != prefix:
            moved.append(f"{key}{params}")
    if list(inspect.signature(AmiBackend.register_image).parameters) != [
        "self",
        "name",
        "description",
    ]:
        moved.append("AmiBackend.register_image")
    return moved


def apply(image_dir: Callable[[str], Path], root: str | None = None) -> None:
    """Share images through the catalog named by `root` (default: the environment's)."""
    global _CATALOG
    where = root if root is not None else os.environ.get(CATALOG_ENV, "")
    if not where:
        return
    _CATALOG = Catalog(Path(where), image_dir)
    PATCHES.apply()


def restore() -> None:
    global _CATALOG
    _CATALOG = None
    with contextlib.suppress(Exception):
        PATCHES.restore()
