"""What `deployer gc` keeps and removes besides fleets: this app's images beyond
`bake.keep_images` (with their snapshots), and leftovers of killed bakes (builders,
temporary key pairs and security groups).

Images are shared by the app's environments, so an image is kept when any fleet of the app
(any environment) runs it, or when a release record of the app inside the rollback window
names it: rolling back to it must not need a bake.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from deployer.aws.ec2_images import snapshot_ids
from deployer.release.engine import Engine


def protected_images(engine: Engine) -> set[str]:
    app = engine.names.app
    images = {
        stack.tags.get("deployer:image", "")
        for stack in engine.cfn.list_with_prefix(f"{app}-")
        if stack.tags.get("deployer:app") == app and stack.tags.get("deployer:role") == "fleet"
    }
    window = timedelta(seconds=engine.spec.rollback_window)
    since = (engine.now() - window).strftime("%Y-%m-%dT%H:%M:%SZ")
    for record in engine.journal.records_of_app(app):
        if (record.finished_at or "9999") >= since:
            images.update(record.images.values())
    return images - {""}


def images_to_remove(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Region -> images beyond the newest `keep_images` that nothing protects."""
    keep = engine.spec.bake.keep_images
    protected = protected_images(engine)
    doomed: dict[str, list[dict[str, Any]]] = {}
    for region in engine.runtime.image_regions:
        images = engine.ec2_in(region).images_of({"deployer:app": engine.names.app})
        available = [i for i in images if i.get("State") in ("available", "failed")]
        old = [i for i in available[keep:] if i["ImageId"] not in protected]
        if old:
            doomed[region] = old
    return doomed


def collect_images(engine: Engine, dry_run: bool) -> list[dict[str, Any]]:
    removed = []
    for region, images in images_to_remove(engine).items():
        ec2 = engine.ec2_in(region)
        for image in images:
            snapshots = snapshot_ids(image) if dry_run else ec2.deregister(image)
            removed.append({"region": region, "image": image["ImageId"], "snapshots": snapshots})
            if not dry_run:
                engine.report(f"gc: deregistered {image['ImageId']} ({region}) and its snapshots")
    return removed


def leftovers(engine: Engine, dry_run: bool) -> list[str]:
    """Builders, key pairs and groups of bakes no live run owns (see Baker.end_leftovers)."""
    region = engine.runtime.image_regions[0]
    if not dry_run:
        return engine.baker.end_leftovers(engine.names.app, region)
    ec2 = engine.ec2_in(region)
    app = engine.names.app
    found = [
        i["InstanceId"]
        for i in ec2.find_instances({"deployer:role": "builder", "deployer:app": app})
    ]
    access = {"deployer:role": "bake-access", "deployer:app": app}
    found += [k["KeyName"] for k in ec2.find_key_pairs(access)]
    found += [g["GroupId"] for g in ec2.find_security_groups(access)]
    return found
