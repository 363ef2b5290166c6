"""Auto Scaling adapter: the observed size and instances of a fleet's group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployer.aws.session import AwsContext
from deployer.core.health import Member


@dataclass(frozen=True)
class GroupState:
    name: str
    desired: int
    instance_ids: tuple[str, ...]
    zones: tuple[str, ...]


class AutoScaling:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    @property
    def _asg(self) -> Any:
        return self._aws.client("autoscaling")

    def describe(self, name: str) -> GroupState | None:
        groups = self._asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
            "AutoScalingGroups"
        ]
        if not groups:
            return None
        group = groups[0]
        instances = [
            i for i in group.get("Instances", []) if i.get("LifecycleState") == "InService"
        ]
        return GroupState(
            name=name,
            desired=int(group["DesiredCapacity"]),
            instance_ids=tuple(i["InstanceId"] for i in instances),
            zones=tuple(sorted({i["AvailabilityZone"] for i in instances})),
        )

    def members(self, name: str) -> tuple[int, list[Member]]:
        """The group's desired capacity and every instance in it, as Auto Scaling sees them."""
        groups = self._asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
            "AutoScalingGroups"
        ]
        if not groups:
            return 0, []
        group = groups[0]
        return int(group["DesiredCapacity"]), [
            Member(
                instance_id=i["InstanceId"],
                lifecycle=str(i.get("LifecycleState", "")),
                healthy=str(i.get("HealthStatus", "Healthy")) == "Healthy",
            )
            for i in group.get("Instances", [])
        ]

    def launch_failure(self, name: str) -> str:
        """Why the group's newest launch failed ('' when it did not): what a fleet with no
        registered targets is waiting on (a KMS key its service-linked role may not use, an
        instance type the zone lacks, a quota).
        """
        activities = self._asg.describe_scaling_activities(
            AutoScalingGroupName=name, MaxRecords=10
        ).get("Activities", [])
        for activity in activities:  # newest first
            if activity.get("StatusCode") in ("Failed", "Cancelled"):
                return str(activity.get("StatusMessage") or activity.get("Description") or "")
            if activity.get("StatusCode") == "Successful":
                return ""
        return ""

    def scale_to_zero(self, name: str) -> None:
        self._asg.update_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, DesiredCapacity=0)
