"""EC2 adapter, images: find, create, copy, tag and deregister images and their snapshots.

EC2 is eventually consistent: right after RunInstances or CreateImage, a call naming the new
id may answer `InvalidInstanceID.NotFound` / `InvalidAMIID.NotFound` ("Eventual consistency in
the Amazon EC2 API"). Calls that name an id we just made retry those codes for a bounded time
with backoff, as AWS advises and botocore's own waiters do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext, error_code

T = TypeVar("T")
NOT_FOUND = frozenset(
    {
        "InvalidInstanceID.NotFound",
        "InvalidAMIID.NotFound",
        "InvalidLaunchTemplateId.NotFound",
        "InvalidKeyPair.NotFound",
        "InvalidGroup.NotFound",
        "InvalidSnapshot.NotFound",
    }
)
PROPAGATION_S = 120.0  # how long a new id may take to be visible everywhere


def tag_filters(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in NOT_FOUND


class Ec2Images:
    def __init__(self, aws: AwsContext, poller: Poller) -> None:
        self._aws = aws
        self._poller = poller

    @property
    def _ec2(self) -> Any:
        return self._aws.client("ec2")

    def _propagated(self, call: Callable[[], T]) -> T:
        """`call`, retried while it answers NotFound for an id that is still propagating."""
        from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

        attempt = retry(
            retry=retry_if_exception(is_not_found),
            stop=stop_after_delay(PROPAGATION_S),
            wait=wait_exponential(multiplier=0.2, max=5),
            sleep=self._poller.sleep,
            reraise=True,
        )
        return attempt(call)()

    def find_image(self, tags: Mapping[str, str]) -> dict[str, Any] | None:
        """A usable image of ours carrying all `tags`, newest first; pending counts as usable."""
        images = self._ec2.describe_images(Owners=["self"], Filters=tag_filters(tags))["Images"]
        usable = [i for i in images if i.get("State") in ("available", "pending")]
        usable.sort(key=lambda i: i.get("CreationDate", ""), reverse=True)
        return usable[0] if usable else None

    def image_exists(self, image_id: str) -> bool:
        try:
            images = self._ec2.describe_images(ImageIds=[image_id])["Images"]
        except ClientError as exc:
            if is_not_found(exc):
                return False  # deregistered (we never ask about an id we just made)
            raise
        return bool(images) and images[0].get("State") == "available"

    def create_image(self, instance_id: str, name: str, tags: Mapping[str, str]) -> str:
        """Image the builder, tagging the image and its snapshots alike. CreateImage takes no
        client token: a retry that finds the name taken (InvalidAMIName.Duplicate) returns
        the image the first attempt made.
        """
        specs = [
            {"ResourceType": "image", "Tags": tag_list(tags)},
            {"ResourceType": "snapshot", "Tags": tag_list(tags)},
        ]
        try:
            response = self._propagated(
                lambda: self._ec2.create_image(
                    InstanceId=instance_id,
                    Name=name,
                    Description=f"deployer image {name}",
                    TagSpecifications=specs,
                )
            )
        except ClientError as exc:
            if error_code(exc) != "InvalidAMIName.Duplicate":
                raise
            images = self._ec2.describe_images(
                Owners=["self"], Filters=[{"Name": "name", "Values": [name]}]
            )["Images"]
            if not images:
                raise
            return str(images[0]["ImageId"])
        return str(response["ImageId"])

    def wait_image(self, image_id: str, deadline_s: float) -> None:
        def check() -> Poll[None]:
            try:
                images = self._ec2.describe_images(ImageIds=[image_id])["Images"]
            except ClientError as exc:
                if is_not_found(exc):
                    return Poll(False, "not visible yet (EC2 is eventually consistent)")
                raise
            state = images[0]["State"] if images else "missing"
            if state == "available":
                return Poll(True, state)
            if state in ("failed", "deregistered", "invalid", "error"):
                raise RuntimeError(f"image {image_id} is {state}")
            return Poll(False, state)

        self._poller.until(f"image {image_id} to be available", check, deadline_s)

    def image(self, image_id: str) -> dict[str, Any] | None:
        try:
            images = self._ec2.describe_images(ImageIds=[image_id])["Images"]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return dict(images[0]) if images else None

    def images_of(self, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every image of ours with `tags` (any state but deregistered), newest first."""
        found = self._ec2.describe_images(Owners=["self"], Filters=tag_filters(tags))["Images"]
        return sorted(found, key=lambda i: i.get("CreationDate", ""), reverse=True)

    def tag(self, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        if resource_ids:
            self._propagated(
                lambda: self._ec2.create_tags(Resources=list(resource_ids), Tags=tag_list(tags))
            )

    def copy_image(
        self, source_id: str, source_region: str, name: str, token: str, tags: Mapping[str, str]
    ) -> str:
        """Copy into this adapter's region, the copy and its snapshots tagged as they are made
        (TagSpecifications): never an untagged image of the app, and the deploy role may
        require the tags on CopyImage itself.
        """
        response = self._ec2.copy_image(
            SourceImageId=source_id,
            SourceRegion=source_region,
            Name=name,
            Description=f"deployer image {name} (copied from {source_region})",
            ClientToken=token,
            TagSpecifications=[
                {"ResourceType": "image", "Tags": tag_list(tags)},
                {"ResourceType": "snapshot", "Tags": tag_list(tags)},
            ],
        )
        return str(response["ImageId"])

    def deregister(self, image: Mapping[str, Any]) -> list[str]:
        """Deregister an image and delete its snapshots; returns the snapshot ids."""
        self._ec2.deregister_image(ImageId=image["ImageId"])
        snapshots = snapshot_ids(image)
        for snapshot in snapshots:
            try:
                self._ec2.delete_snapshot(SnapshotId=snapshot)
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
        return snapshots


def snapshot_ids(image: Mapping[str, Any]) -> list[str]:
    return [
        str(device["Ebs"]["SnapshotId"])
        for device in image.get("BlockDeviceMappings", [])
        if device.get("Ebs", {}).get("SnapshotId")
    ]
