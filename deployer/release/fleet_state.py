"""Fleets as AWS has them now: observed from their stacks' tags and outputs, retired once no
listener routes to them, put aside when they failed.
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.autoscaling import AutoScaling
from deployer.aws.cloudformation import CloudFormation, Stack
from deployer.core.model import Fleet, LiveState
from deployer.core.names import Names
from deployer.errors import PollTimeout, StackFailed
from deployer.infra.stacks import STACK_DEADLINE_S, Infra
from deployer.release.traffic import Traffic


class Fleets:
    def __init__(
        self,
        names: Names,
        cfn: CloudFormation,
        asg: AutoScaling,
        traffic: Traffic,
        on_failure: str,
        report: Callable[[str], None],
    ) -> None:
        self.names = names
        self.cfn = cfn
        self.asg = asg
        self.traffic = traffic
        self.on_failure = on_failure  # strategy.on_failure: scale_to_zero or delete
        self.report = report

    def observe(self, infra: Infra) -> LiveState:
        """The fleets of this app/environment and the production weights, read from AWS now."""
        fleets = [
            self.fleet_of(stack)
            for stack in self.cfn.list_with_prefix(self.names.fleet_stack_prefix)
            if stack.tags.get("deployer:app") == self.names.app
        ]
        weights = self.traffic.elb.listener_weights(infra.listener_arn)
        return LiveState(tuple(fleets), weights).with_weights()

    def fleet_of(self, stack: Stack) -> Fleet:
        asg_name = stack.outputs.get("AutoScalingGroupName", "")
        group = self.asg.describe(asg_name) if asg_name else None
        version = stack.tags.get("deployer:version", "?")
        if stack.outputs.get("TargetGroupArn"):
            self.traffic.serves(stack.outputs["TargetGroupArn"], version)
        return Fleet(
            stack_name=stack.name,
            version=version,
            digest=stack.tags.get("deployer:digest", ""),
            image_id=stack.tags.get("deployer:image", ""),
            bake_key=stack.tags.get("deployer:bake-key", ""),
            settings=stack.tags.get("deployer:settings", ""),
            release_id=stack.tags.get("deployer:release-id", ""),
            stack_status=stack.status,
            target_group_arn=stack.outputs.get("TargetGroupArn", ""),
            asg_name=asg_name,
            desired=group.desired if group else 0,
            alarms=tuple(a for a in stack.outputs.get("GateAlarmNames", "").split(",") if a),
        )

    def delete(self, stack_name: str, wait: bool = True) -> None:
        stack = self.cfn.describe(stack_name)
        if stack is not None:
            self.cfn.delete(stack.stack_id)
            if wait:
                self.cfn.wait_deleted(stack.stack_id, STACK_DEADLINE_S)

    def put_aside(self, fleet: Fleet, wait: bool = True) -> str:
        """A green fleet that failed: scale it to zero (its stack kept to look at until the
        next release or `deployer gc` deletes it) or delete it now (strategy.on_failure).
        """
        try:
            if self.on_failure == "delete":
                self.report(f"cleanup: deleting {fleet.stack_name}")
                self.delete(fleet.stack_name, wait)
            elif fleet.asg_name:
                self.report(
                    f"cleanup: scaling {fleet.stack_name} to zero; its stack stays to look at "
                    "until the next release or `deployer gc` deletes it"
                )
                self.asg.scale_to_zero(fleet.asg_name)
        except (ClientError, BotoCoreError, StackFailed, PollTimeout) as exc:
            return f"; putting {fleet.stack_name} aside failed: {exc}"
        return ""

    def retire(self, live: LiveState, doomed: list[Fleet]) -> str:
        """Delete fleets no listener routes to. Returns what failed, or ''."""
        problems = []
        for fleet in doomed:
            if fleet.target_group_arn in live.weights:
                continue  # still in the listener's forward config: never delete a routed group
            self.report(f"retire: deleting {fleet.stack_name} ({fleet.version})")
            try:
                self.delete(fleet.stack_name)
            except (ClientError, BotoCoreError, StackFailed, PollTimeout) as exc:
                problems.append(f"{fleet.stack_name}: {exc}")
        return "; ".join(problems)
