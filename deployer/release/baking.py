"""`deployer bake VERSION`: bake (or reuse) the image of a version without releasing it, and
what `plan` says about the bake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployer.aws.actions import BAKE_ACTIONS
from deployer.bake.artifact import Artifact
from deployer.bake.baker import BakeRequest
from deployer.bake.images import Images
from deployer.bake.key import INPUT_TAGS, KEY_TAG, BakeInputs
from deployer.core.bakekey import changed_inputs
from deployer.core.names import Version, new_run_id
from deployer.infra.stacks import Infra
from deployer.release.engine import Engine
from deployer.release.preflight import preflight
from deployer.release.steps import bake_request


@dataclass(frozen=True)
class BakeResult:
    version: str
    digest: str
    image_id: str
    reused: bool
    bake_key: str
    images: dict[str, str]
    mutating_calls: int
    changed: list[str] = field(default_factory=list)


def _request(
    engine: Engine, version: Version, artifact: Artifact, infra: Infra | None, rebake: bool
) -> BakeRequest:
    where = infra or Infra.nowhere()
    return bake_request(engine, version, artifact, where, new_run_id(engine.now()), rebake)


def bake(
    engine: Engine, version_text: str, wait_s: float | None = None, rebake: bool = False
) -> BakeResult:
    """Preflight; then an image with the bake key is reused with no change at all (0
    mutating calls), unless a killed run of the key left its builder or access; else, under
    the release lock (the builder runs in the infra it may create), the bake (or the reuse
    that ends those leftovers first).
    """
    version = Version.parse(version_text)
    with engine.timed("preflight"):
        artifact = preflight(engine, needed=BAKE_ACTIONS)
    images = Images(engine.ec2_in, engine.runtime.image_regions, engine.names.app, engine.report)
    inputs = engine.baker.inputs(_request(engine, version, artifact, None, rebake))
    if not rebake:
        everywhere = {r: images.find(inputs.key, r) for r in engine.runtime.image_regions}
        ready = all(i is not None and i.get("State") == "available" for i in everywhere.values())
        if ready and not engine.baker.left_by(engine.names.app, images.regions[0], inputs.key):
            found = {r: str(i["ImageId"]) for r, i in everywhere.items() if i is not None}
            engine.report(f"bake: reusing image {found[images.regions[0]]} for {version}")
            return BakeResult(
                version.text,
                artifact.digest,
                found[images.regions[0]],
                True,
                inputs.key,
                found,
                sum(engine.runtime.aws.mutations.values()),
            )
    with engine.records.locked(wait_s):
        with engine.timed("infra"):
            infra = engine.stacks.ensure()
        with engine.timed("bake"):
            try:
                request = _request(engine, version, artifact, infra, rebake)
                baked = engine.baker.bake_or_reuse(request)
            finally:
                engine.baker.finish_deferred()  # an interrupted bake's last cleanup
    return BakeResult(
        version=version.text,
        digest=artifact.digest,
        image_id=baked.image_id,
        reused=baked.reused,
        bake_key=baked.bake_key,
        images=baked.images,
        mutating_calls=sum(engine.runtime.aws.mutations.values()),
    )


def bake_plan(engine: Engine, version: Version, artifact: Artifact) -> dict[str, Any]:
    """Whether a release would bake, and which input changed since this app's newest image."""
    inputs: BakeInputs = engine.baker.inputs(_request(engine, version, artifact, None, False))
    images = Images(engine.ec2_in, engine.runtime.image_regions, engine.names.app, engine.report)
    found = images.find(inputs.key)
    if found is not None:
        return {"bake": False, "image": found["ImageId"], "bake_key": inputs.key, "changed": []}
    newest = next(iter(engine.ec2.images_of({"deployer:app": engine.names.app})), None)
    if newest is None:
        changed = ["no image of this app yet"]
    else:
        tags = {t["Key"]: t["Value"] for t in newest.get("Tags", [])}
        if KEY_TAG not in tags:
            changed = ["the newest image predates bake keys"]
        else:
            changed = changed_inputs(tags, inputs.tags, INPUT_TAGS)
    return {"bake": True, "image": None, "bake_key": inputs.key, "changed": changed}
