"""EC2 adapter: builder instances (images: deployer.aws.ec2_images).

EC2 is eventually consistent: right after RunInstances or CreateImage, a call naming the new
id may answer `InvalidInstanceID.NotFound` / `InvalidAMIID.NotFound` ("Eventual consistency in
the Amazon EC2 API"). Calls that name an id we just made retry those codes for a bounded time
with backoff, as AWS advises and botocore's own waiters do.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.ec2_images import Ec2Images, is_not_found, tag_filters, tag_list
from deployer.aws.poller import Poll
from deployer.aws.session import error_code
from deployer.core.network import NetworkFacts


class BuilderGone(RuntimeError):
    """The builder stopped or terminated before it ran (e.g. its shutdown timer fired)."""


class Ec2(Ec2Images):
    """Builder instances, their keys and security groups, and the network facts the
    preflight reads; images and snapshots come from Ec2Images."""

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

    def on_demand_types_running(self) -> Counter[str]:
        """How many pending or running On-Demand instances of each type the account has in
        this Region (Spot instances count against quotas of their own).
        """
        found: Counter[str] = Counter()
        pages = self._ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    if instance.get("InstanceLifecycle") in ("spot", "scheduled"):
                        continue
                    found[str(instance["InstanceType"])] += 1
        return found

    def vcpus_of(self, instance_types: Iterable[str]) -> dict[str, int]:
        """Each instance type's default vCPUs (DescribeInstanceTypes, 100 types a call)."""
        wanted = sorted(set(instance_types))
        vcpus: dict[str, int] = {}
        for start in range(0, len(wanted), 100):
            answer = self._ec2.describe_instance_types(InstanceTypes=wanted[start : start + 100])
            for described in answer["InstanceTypes"]:
                vcpus[described["InstanceType"]] = int(described["VCpuInfo"]["DefaultVCpus"])
        return vcpus

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
