"""ELBv2 adapter: listener weights (the traffic switch) and target health (a gate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployer.aws.session import AwsContext
from deployer.core.model import TargetHealth, TargetState

NO_FLEET_ACTION = {
    "Type": "fixed-response",
    "FixedResponseConfig": {
        "StatusCode": "503",
        "ContentType": "text/plain",
        "MessageBody": "no release is live yet",
    },
}


def weights_from_actions(actions: list[dict[str, Any]]) -> dict[str, int]:
    """Target group ARN -> weight, from a listener's default actions."""
    for action in actions:
        if action.get("Type") != "forward":
            continue
        groups = action.get("ForwardConfig", {}).get("TargetGroups")
        if groups:
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        if action.get("TargetGroupArn"):
            return {action["TargetGroupArn"]: 1}
    return {}


def forward_action(weights: Mapping[str, int]) -> dict[str, Any]:
    if not weights:
        return NO_FLEET_ACTION
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in weights.items()],
            "TargetGroupStickinessConfig": {"Enabled": False},
        },
    }


class Elbv2:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    @property
    def _elb(self) -> Any:
        return self._aws.client("elbv2")

    def listener_weights(self, listener_arn: str) -> dict[str, int]:
        listeners = self._elb.describe_listeners(ListenerArns=[listener_arn])["Listeners"]
        return weights_from_actions(listeners[0].get("DefaultActions", []))

    def set_weights(self, listener_arn: str, weights: Mapping[str, int]) -> None:
        """The traffic switch: one ModifyListener call, atomic on the ALB."""
        self._elb.modify_listener(
            ListenerArn=listener_arn, DefaultActions=[forward_action(weights)]
        )

    def target_health(self, target_group_arn: str) -> list[TargetHealth]:
        described = self._elb.describe_target_health(TargetGroupArn=target_group_arn)
        result = []
        for item in described["TargetHealthDescriptions"]:
            health = item.get("TargetHealth", {})
            try:
                state = TargetState(health.get("State", "unavailable"))
            except ValueError:
                state = TargetState.UNAVAILABLE
            reason = health.get("Reason", "")
            if health.get("Description"):
                reason = f"{reason}: {health['Description']}" if reason else health["Description"]
            result.append(TargetHealth(item["Target"]["Id"], state, reason))
        return result
