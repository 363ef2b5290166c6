"""EC2 adapter: builder instances and images.

EC2 is eventually consistent: right after RunInstances or CreateImage, a call naming the new
id may answer `InvalidInstanceID.NotFound` / `InvalidAMIID.NotFound` ("Eventual consistency in
the Amazon EC2 API"). Calls that name an id we just made retry those codes for a bounded time
with backoff, as AWS advises and botocore's own waiters do.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext, error_code
from deployer.core.network import NetworkFacts

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
            # A public address asked for explicitly: a subnet of the operator's own network
            # need not give one by default, and the runner reaches the builder over SSH.
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "SubnetId": subnet_id,
                    "Groups": list(security_group_ids),
                    "AssociatePublicIpAddress": True,
                    "DeleteOnTermination": True,
                }
            ],
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

    def launch_times(self, instance_ids: Sequence[str]) -> dict[str, float]:
        """Instance id -> when it launched (epoch seconds); ids EC2 does not know yet are
        left out (a new instance may not be visible everywhere for a moment).
        """
        if not instance_ids:
            return {}
        found: dict[str, float] = {}
        pages = self._ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": list(instance_ids)}]
        )
        for page in pages:
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    found[instance["InstanceId"]] = instance["LaunchTime"].timestamp()
        return found

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

    def terminate(self, instance_ids: Sequence[str]) -> None:
        """Terminate, also right after launch, when the id may not be visible yet."""
        if instance_ids:
            self._propagated(lambda: self._ec2.terminate_instances(InstanceIds=list(instance_ids)))

    # ---- temporary access for a bake ---------------------------------------------------------

    def import_key_pair(self, name: str, public_key: str, tags: Mapping[str, str]) -> None:
        self._ec2.import_key_pair(
            KeyName=name,
            PublicKeyMaterial=public_key.encode(),
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list(tags)}],
        )

    def delete_key_pair(self, name: str) -> None:
        self._propagated(lambda: self._ec2.delete_key_pair(KeyName=name))

    def find_key_pairs(self, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        found = self._ec2.describe_key_pairs(Filters=tag_filters(tags))["KeyPairs"]
        return [dict(k) for k in found]

    def create_ssh_group(
        self, name: str, vpc_id: str, source_cidr: str, tags: Mapping[str, str]
    ) -> str:
        """A security group that lets in port 22 from `source_cidr` only."""
        group = self._ec2.create_security_group(
            GroupName=name,
            Description="deployer: SSH to one image builder, for one bake",
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
        )["GroupId"]
        self._propagated(
            lambda: self._ec2.authorize_security_group_ingress(
                GroupId=group,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 22,
                        "ToPort": 22,
                        "IpRanges": [{"CidrIp": source_cidr, "Description": "deployer bake"}],
                    }
                ],
            )
        )
        return str(group)

    def delete_security_group(self, group_id: str) -> None:
        self._propagated(lambda: self._ec2.delete_security_group(GroupId=group_id))

    def delete_security_group_when_free(self, group_id: str, deadline_s: float) -> None:
        """Delete a group once no network interface uses it any more: EC2 answers
        DependencyViolation while a terminated instance's interface is still detaching.
        """

        def check() -> Poll[None]:
            try:
                self._ec2.delete_security_group(GroupId=group_id)
            except ClientError as exc:
                if is_not_found(exc):
                    return Poll(True, "gone")
                if error_code(exc) != "DependencyViolation":
                    raise
                return Poll(False, "still in use")
            return Poll(True, "deleted")

        self._poller.until(f"security group {group_id} to be free", check, deadline_s)

    def find_security_groups(self, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        found = self._ec2.describe_security_groups(Filters=tag_filters(tags))["SecurityGroups"]
        return [dict(g) for g in found]

    def console_output(self, instance_id: str) -> str:
        """The builder's console, newest (Latest) where the instance type supports it."""
        try:
            answer = self._ec2.get_console_output(InstanceId=instance_id, Latest=True)
        except ClientError as exc:
            if is_not_found(exc):
                return ""
            if error_code(exc) != "UnsupportedOperation":
                raise
            answer = self._ec2.get_console_output(InstanceId=instance_id)
        output = str(answer.get("Output") or "")
        try:
            return base64.b64decode(output).decode(errors="replace") if output else ""
        except ValueError:
            return output  # some endpoints answer plain text

    def wait_terminated(self, instance_ids: Sequence[str], deadline_s: float) -> None:
        def check() -> Poll[None]:
            reservations = self._ec2.describe_instances(InstanceIds=list(instance_ids))
            states = {
                i["State"]["Name"] for r in reservations["Reservations"] for i in r["Instances"]
            }
            return Poll(states <= {"terminated"}, ", ".join(sorted(states)))

        self._poller.until(f"{', '.join(instance_ids)} to terminate", check, deadline_s)

    def network_of(self, vpc_id: str, subnet_ids: Sequence[str]) -> NetworkFacts:
        """What preflight needs to judge an operator's own network: the VPC (None when it
        does not exist), its subnets among those asked, its route tables and its endpoints.
        """
        vpcs = self._ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"]
        if not vpcs:
            return NetworkFacts(None, {}, [], [])
        subnets = self._ec2.describe_subnets(
            Filters=[{"Name": "subnet-id", "Values": list(subnet_ids)}]
        )["Subnets"]
        tables = self._ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
            "RouteTables"
        ]
        endpoints = self._ec2.describe_vpc_endpoints(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
        )["VpcEndpoints"]
        return NetworkFacts(
            vpcs[0], {s["SubnetId"]: s for s in subnets}, list(tables), list(endpoints)
        )

    def default_ebs_key(self) -> str | None:
        """The account's default EBS key in this region, when encryption by default is on."""
        if not self._ec2.get_ebs_encryption_by_default().get("EbsEncryptionByDefault"):
            return None
        return str(self._ec2.get_ebs_default_kms_key_id().get("KmsKeyId") or "") or None

    def vpcs_and_addresses(self) -> tuple[int, int]:
        """How many VPCs and Elastic IPs the account has in this Region (quotas count both)."""
        vpcs = sum(
            len(page["Vpcs"]) for page in self._ec2.get_paginator("describe_vpcs").paginate()
        )
        return vpcs, len(self._ec2.describe_addresses()["Addresses"])

    def availability_zones(self) -> list[str]:
        """The zones of the region open to this account (opt-in zones left out)."""
        zones = self._ec2.describe_availability_zones(
            Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}]
        )["AvailabilityZones"]
        return sorted(
            z["ZoneName"]
            for z in zones
            if z.get("State") == "available"
            and z.get("OptInStatus", "opt-in-not-required") == "opt-in-not-required"
        )

    # ---- images and their snapshots ----------------------------------------------------------

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
