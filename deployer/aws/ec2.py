"""EC2 adapter: builder instances and images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext


def tag_filters(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class Ec2:
    def __init__(self, aws: AwsContext, poller: Poller) -> None:
        self._ec2 = aws.client("ec2")
        self._poller = poller

    def find_image(self, tags: Mapping[str, str]) -> dict[str, Any] | None:
        """A usable image of ours carrying all `tags`, newest first; pending counts as usable."""
        images = self._ec2.describe_images(Owners=["self"], Filters=tag_filters(tags))["Images"]
        usable = [i for i in images if i.get("State") in ("available", "pending")]
        usable.sort(key=lambda i: i.get("CreationDate", ""), reverse=True)
        return usable[0] if usable else None

    def image_exists(self, image_id: str) -> bool:
        images = self._ec2.describe_images(ImageIds=[image_id])["Images"]
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
    ) -> str:
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
        instances = self._ec2.run_instances(**params)["Instances"]
        return str(instances[0]["InstanceId"])

    def describe_instance(self, instance_id: str) -> dict[str, Any]:
        reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return dict(reservations[0]["Instances"][0])

    def wait_running(self, instance_id: str, deadline_s: float) -> dict[str, Any]:
        def check() -> Poll[dict[str, Any]]:
            instance = self.describe_instance(instance_id)
            state = instance["State"]["Name"]
            if state == "running":
                return Poll(True, state, instance)
            if state in ("shutting-down", "terminated", "stopped"):
                raise RuntimeError(f"builder {instance_id} is {state} before it ran")
            return Poll(False, state)

        return self._poller.until(f"builder {instance_id} to run", check, deadline_s)

    def create_image(self, instance_id: str, name: str, tags: Mapping[str, str]) -> str:
        response = self._ec2.create_image(
            InstanceId=instance_id,
            Name=name,
            Description=f"deployer image {name}",
            TagSpecifications=[{"ResourceType": "image", "Tags": tag_list(tags)}],
        )
        return str(response["ImageId"])

    def wait_image(self, image_id: str, deadline_s: float) -> None:
        def check() -> Poll[None]:
            images = self._ec2.describe_images(ImageIds=[image_id])["Images"]
            state = images[0]["State"] if images else "missing"
            if state == "available":
                return Poll(True, state)
            if state in ("failed", "deregistered", "invalid", "error"):
                raise RuntimeError(f"image {image_id} is {state}")
            return Poll(False, state)

        self._poller.until(f"image {image_id} to be available", check, deadline_s)

    def terminate(self, instance_ids: Sequence[str]) -> None:
        if instance_ids:
            self._ec2.terminate_instances(InstanceIds=list(instance_ids))
