"""`deployer bake VERSION`: bake (or reuse) the image of a version without releasing it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from deployer.core.names import Version
from deployer.engine import Engine
from deployer.preflight import preflight
from deployer.release_steps import bake_request


@dataclass(frozen=True)
class BakeResult:
    version: str
    digest: str
    image_id: str
    reused: bool
    images: dict[str, str]
    mutating_calls: int


def bake(engine: Engine, version_text: str, wait_s: float | None = None) -> BakeResult:
    """Preflight, then (under the release lock, since it may create the infra the builder
    runs in) the image of `version`: reused when one exists for its artifact.
    """
    version = Version.parse(version_text)
    with engine.timed("preflight"):
        artifact = preflight(engine)
    region = engine.runtime.aws.region
    tags = {
        "deployer:app": engine.names.app,
        "deployer:version": version.text,
        "deployer:digest": artifact.digest,
    }
    found = engine.ec2.find_image(tags)
    if found is not None and found.get("State") == "available":  # reuse: change nothing
        engine.report(f"bake: reusing image {found['ImageId']} for {version}")
        return BakeResult(
            version.text, artifact.digest, found["ImageId"], True, {region: found["ImageId"]}, 0
        )
    with engine.locked(wait_s):
        with engine.timed("infra"):
            infra = engine.ensure_infra()
        with engine.timed("bake"):
            run_id = f"bake-{engine.now().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
            baked = engine.baker.bake_or_reuse(
                bake_request(engine, version, artifact, infra, run_id)
            )
    return BakeResult(
        version=version.text,
        digest=artifact.digest,
        image_id=baked.image_id,
        reused=baked.reused,
        images={region: baked.image_id},
        mutating_calls=sum(engine.runtime.aws.mutations.values()),
    )
