"""EC2 adapter: builder instances and images.

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


class BuilderGone(RuntimeError):
    """The builder stopped or terminated before it ran (e.g. its shutdown timer fired)."""


class Ec2:
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

    def find_instances(self, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        filters = tag_filters(tags) + [
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        ]
        found = []
        for page in self._ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                found.extend(reservation["Instances"])
        return found

    def run_builder(
        self,
        image_id: str,
        instance_type: str,
        subnet_id: str,
        security_group_ids: Sequence[str],
        key_name: str | None,
        tags: Mapping[str, str],
        token: str,
        user_data: str = "",
    ) -> str:
        """One builder. `token` makes botocore's retries of this call idempotent; it must be
        new for every builder, since EC2 answers a reused token with the first instance (or
        `IdempotentInstanceTerminated` once that one is gone).
        """
        params: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": subnet_id,
            "SecurityGroupIds": list(security_group_ids),
            "ClientToken": token,
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list(tags)},
            ],
        }
        if key_name:
            params["KeyName"] = key_name
        if user_data:
            params["UserData"] = user_data
        # A security group or key pair made just before may not be visible yet; the token
        # makes the retries of this call safe.
        instances = self._propagated(lambda: self._ec2.run_instances(**params))["Instances"]
        return str(instances[0]["InstanceId"])

    def describe_instance(self, instance_id: str) -> dict[str, Any]:
        def describe() -> dict[str, Any]:
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
            return dict(reservations[0]["Instances"][0])

        return self._propagated(describe)

    def wait_running(self, instance_id: str, deadline_s: float) -> dict[str, Any]:
        def check() -> Poll[dict[str, Any]]:
            try:
                reservations = self._ec2.describe_instances(InstanceIds=[instance_id])[
                    "Reservations"
                ]
            except ClientError as exc:
                if is_not_found(exc):
                    return Poll(False, "not visible yet (EC2 is eventually consistent)")
                raise
            instance = dict(reservations[0]["Instances"][0])
            state = instance["State"]["Name"]
            if state == "running":
                return Poll(True, state, instance)
            if state in ("shutting-down", "terminated", "stopping", "stopped"):
                raise BuilderGone(f"builder {instance_id} is {state} before it ran")
            return Poll(False, state)

        return self._poller.until(f"builder {instance_id} to run", check, deadline_s)

    def create_image(self, instance_id: str, name: str, tags: Mapping[str, str]) -> str:
        """Image the builder. CreateImage takes no client token: a retry that finds the name
        taken (InvalidAMIName.Duplicate) returns the image the first attempt made.
        """
        try:
            response = self._propagated(
                lambda: self._ec2.create_image(
                    InstanceId=instance_id,
                    Name=name,
                    Description=f"deployer image {name}",
                    TagSpecifications=[{"ResourceType": "image", "Tags": tag_list(tags)}],
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

    def terminate(self, instance_ids: Sequence[str]) -> None:
        """Terminate, also right after launch, when the id may not be visible yet."""
        if instance_ids:
            self._propagated(lambda: self._ec2.terminate_instances(InstanceIds=list(instance_ids)))
