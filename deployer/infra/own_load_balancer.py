"""Bring your own load balancer (service.listener_arn, service.test_listener_arn): deployer
makes none and manages only the weights, in a rule of its own on each listener, as CodeDeploy
does on an existing ALB. The service stack then holds only the instances' security group
(open to the load balancer's) and their role. What it needs is read from ELB here, and
checked before any change.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from deployer.aws.elbv2 import Elbv2, is_every_path, weights_from_actions


@dataclass(frozen=True)
class OwnLoadBalancer:
    listener_arn: str = ""
    test_listener_arn: str = ""
    listener: dict[str, Any] | None = None
    test_listener: dict[str, Any] | None = None
    load_balancer: dict[str, Any] | None = None

    @staticmethod
    def read(elb: Elbv2, listener_arn: str, test_listener_arn: str) -> OwnLoadBalancer:
        listener = elb.describe_listener(listener_arn)
        test_listener = elb.describe_listener(test_listener_arn)
        balancer = elb.describe_load_balancer(listener["LoadBalancerArn"]) if listener else None
        return OwnLoadBalancer(listener_arn, test_listener_arn, listener, test_listener, balancer)

    def parameters(self) -> dict[str, str]:
        """The service stack's Own* parameters (all empty: deployer makes the load balancer)."""
        if not self.listener_arn:
            return {"OwnLoadBalancerSecurityGroupId": ""}
        listener, test, balancer = (
            self.listener or {},
            self.test_listener or {},
            self.load_balancer or {},
        )
        arn = str(balancer.get("LoadBalancerArn", ""))
        groups = balancer.get("SecurityGroups") or [""]
        return {
            "OwnListenerArn": self.listener_arn,
            "OwnTestListenerArn": self.test_listener_arn,
            "OwnListenerPort": str(listener.get("Port", "")),
            "TestListenerPort": str(test.get("Port", "")),
            "OwnLoadBalancerArn": arn,
            "OwnLoadBalancerDns": str(balancer.get("DNSName", "")),
            # app/<name>/<id>: the LoadBalancer dimension of its CloudWatch metrics
            "OwnLoadBalancerFullName": arn.split(":loadbalancer/", 1)[-1],
            "OwnLoadBalancerSecurityGroupId": str(groups[0]),
        }

    def problems(
        self, elb: Elbv2, vpc_id: str, region: str, fleet_groups: Collection[str]
    ) -> list[str]:
        """Each names its field and the reason; [] when deployer can release through it.
        `fleet_groups`: the target groups of this app's fleets (deployer's rule forwards to
        them only).
        """
        found = []
        for field, arn, listener in (
            ("listener_arn", self.listener_arn, self.listener),
            ("test_listener_arn", self.test_listener_arn, self.test_listener),
        ):
            if listener is None:
                found.append(f"service.{field}: {arn} does not exist in {region}")
                continue
            if listener.get("Protocol") not in ("HTTP", "HTTPS"):
                found.append(
                    f"service.{field}: {arn} is {listener.get('Protocol')}; an Application "
                    "Load Balancer's HTTP or HTTPS listener is needed"
                )
            if self.listener is not None and listener.get("LoadBalancerArn") != self.listener.get(
                "LoadBalancerArn"
            ):
                found.append(
                    f"service.{field}: {arn} is on another load balancer than listener_arn"
                )
            rule = elb.rule_at_priority(arn)
            if rule is not None and not _is_deployers(rule, fleet_groups):
                found.append(
                    f"service.rule_priority: priority {elb.priority} of {arn} is taken by a "
                    f"rule of yours ({rule.get('RuleArn')}); choose a free one"
                )
        balancer = self.load_balancer
        if self.listener is not None and balancer is not None:
            if balancer.get("VpcId") != vpc_id:
                found.append(
                    f"service.listener_arn: its load balancer is in {balancer.get('VpcId')}, "
                    f"not in network.vpc_id {vpc_id}"
                )
            if not balancer.get("SecurityGroups"):
                found.append(
                    "service.listener_arn: its load balancer has no security group for the "
                    "instances to admit"
                )
        return found


def _is_deployers(rule: dict[str, Any], fleet_groups: Collection[str]) -> bool:
    """deployer's weights rule: every path, forwarding to this app's fleets only."""
    groups = weights_from_actions(rule.get("Actions", []))
    return is_every_path(rule) and bool(groups) and set(groups) <= set(fleet_groups)
