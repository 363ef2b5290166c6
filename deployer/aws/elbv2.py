"""ELBv2 adapter: listener weights (the traffic switch) and target health (a gate).

deployer alone owns the weights: they live in a listener rule deployer makes (priority 1,
every path), not in the listener's default action, which the service stack owns (a fixed 503)
and which CloudFormation resets whenever it updates the listener (a new TLS policy, say). A
switch is one ModifyRule call, atomic on the ALB; with no weights the rule is removed and the
listener answers its 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext, error_code
from deployer.core.model import TargetHealth, TargetState
from deployer.errors import NeedsHuman

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


EVERY_PATH = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["*"]}}]


def is_every_path(rule: Mapping[str, Any]) -> bool:
    """Whether a rule has deployer's condition alone: every path."""
    paths = [
        value
        for condition in rule.get("Conditions", [])
        for value in (
            condition.get("PathPatternConfig", {}).get("Values") or condition.get("Values", [])
        )
    ]
    return paths == ["*"] and len(rule.get("Conditions", [])) == 1


class Elbv2:
    def __init__(
        self,
        aws: AwsContext,
        priority: int = 1,
        owns_listeners: bool = True,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """`priority`: where deployer's weights rule sits. `owns_listeners`: False for the
        operator's own load balancer, whose default actions deployer never reads or changes.
        `tags`: the weights rule's (deployer:app, deployer:environment), so that the deploy
        role may change this app's rule only.
        """
        self._aws = aws
        self.priority = str(priority)
        self.owns_listeners = owns_listeners
        self.tags = dict(tags or {})

    @property
    def _elb(self) -> Any:
        return self._aws.client("elbv2")

    def _weights_rule(self, listener_arn: str) -> dict[str, Any] | None:
        pages = self._elb.get_paginator("describe_rules").paginate(ListenerArn=listener_arn)
        for page in pages:
            for rule in page["Rules"]:
                if rule.get("Priority") == self.priority:
                    return dict(rule)
        return None

    def weights_rule_arn(self, listener_arn: str) -> str:
        """deployer's weights rule on the listener (made at the first switch)."""
        rule = self._weights_rule(listener_arn)
        if rule is None:
            raise RuntimeError(f"{listener_arn} has no deployer weights rule yet")
        return str(rule["RuleArn"])

    def _default_actions(self, listener_arn: str) -> list[dict[str, Any]]:
        listeners = self._elb.describe_listeners(ListenerArns=[listener_arn])["Listeners"]
        return list(listeners[0].get("DefaultActions", []))

    def listener_weights(self, listener_arn: str) -> dict[str, int]:
        """The weights deployer's rule forwards with; a listener from before the rule (its
        default action forwarding) is read the old way.
        """
        rule = self._weights_rule(listener_arn)
        if rule is not None:
            return weights_from_actions(rule.get("Actions", []))
        if not self.owns_listeners:
            return {}
        return weights_from_actions(self._default_actions(listener_arn))

    def rule_at_priority(self, listener_arn: str) -> dict[str, Any] | None:
        """The rule where deployer's weights rule goes (None: the priority is free)."""
        return self._weights_rule(listener_arn)

    def tags_of(self, arn: str) -> dict[str, str]:
        """A listener's (or a rule's) tags; {} for one that does not exist."""
        try:
            found = self._elb.describe_tags(ResourceArns=[arn])["TagDescriptions"]
        except ClientError as exc:
            if error_code(exc) in ("ListenerNotFound", "RuleNotFound", "ValidationError"):
                return {}
            raise
        return {t["Key"]: t["Value"] for d in found for t in d.get("Tags", [])}

    def describe_listener(self, listener_arn: str) -> dict[str, Any] | None:
        return self._one("describe_listeners", "ListenerArns", listener_arn, "Listeners")

    def describe_load_balancer(self, arn: str) -> dict[str, Any] | None:
        return self._one("describe_load_balancers", "LoadBalancerArns", arn, "LoadBalancers")

    def _one(self, call: str, by: str, arn: str, listed: str) -> dict[str, Any] | None:
        """One listener or load balancer by ARN; None when ELB says it is not found."""
        try:
            found = getattr(self._elb, call)(**{by: [arn]})[listed]
        except ClientError as exc:
            if error_code(exc) in ("ListenerNotFound", "LoadBalancerNotFound"):
                return None
            raise
        return dict(found[0]) if found else None

    def set_weights(
        self, listener_arn: str, weights: Mapping[str, int], _retried: bool = False
    ) -> None:
        """The traffic switch: one ModifyRule call on deployer's rule, atomic on the ALB
        (made at the first switch; removed when no fleet should get traffic).
        """
        rule = self._weights_rule(listener_arn)
        if rule is not None and not self.owns_listeners and not is_every_path(rule):
            raise NeedsHuman(  # an operator's rule took the priority since the preflight
                f"priority {self.priority} of {listener_arn} holds a rule that is not "
                f"deployer's ({rule.get('RuleArn')}); it was left as it is"
            )
        if not weights:
            if rule is not None:
                self._elb.delete_rule(RuleArn=rule["RuleArn"])
            return
        if rule is not None:
            self._elb.modify_rule(RuleArn=rule["RuleArn"], Actions=[forward_action(weights)])
            return
        try:
            self._elb.create_rule(
                ListenerArn=listener_arn,
                Priority=int(self.priority),
                Conditions=EVERY_PATH,
                Actions=[forward_action(weights)],
                **({"Tags": self._tag_list()} if self.tags else {}),
            )
        except ClientError as exc:
            if error_code(exc) != "PriorityInUse" or _retried:  # a retried CreateRule
                raise  # that had worked is found by its priority once, not forever
            self.set_weights(listener_arn, weights, _retried=True)
            return
        if self.owns_listeners and weights_from_actions(self._default_actions(listener_arn)):
            # A listener from before the rule: its default action goes back to the 503 the
            # stack owns, so that no fleet it named stays in use there.
            self._elb.modify_listener(ListenerArn=listener_arn, DefaultActions=[NO_FLEET_ACTION])

    def _tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags.items()]

    def tag_weights_rule(self, listener_arn: str) -> bool:
        """A weights rule made before rules were tagged gets deployer's tags (the deploy role
        changes tagged rules only). Returns whether it had to.
        """
        rule = self._weights_rule(listener_arn)
        if rule is None or not self.tags or not is_every_path(rule):
            return False
        if all(self.tags_of(rule["RuleArn"]).get(k) == v for k, v in self.tags.items()):
            return False
        self._elb.add_tags(ResourceArns=[rule["RuleArn"]], Tags=self._tag_list())
        return True

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
