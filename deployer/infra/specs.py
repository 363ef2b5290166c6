"""The environment's long-lived stacks (network, service) as deployer.yaml describes them: one
description for `release`, `plan` and `check`, and ensuring AWS has them so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from deployer.aws.cloudformation import CloudFormation
from deployer.aws.elbv2 import Elbv2
from deployer.core.names import Names
from deployer.errors import BadInput
from deployer.infra.own_load_balancer import OwnLoadBalancer
from deployer.infra.stacks import Infra, StackSpec, Templates, ensure_stack

if TYPE_CHECKING:
    from deployer.config.model import DeployConfig

DEFAULT_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


class EnvironmentStacks:
    def __init__(
        self,
        spec: DeployConfig,
        names: Names,
        cfn: CloudFormation,
        elb: Elbv2,
        templates_dir: Path,
        artifact_bucket: Callable[[], str],
        caller_cidr: Callable[[], str],
        seen: Callable[[Infra], Infra],
        report: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self.names = names
        self.cfn = cfn
        self.elb = elb
        self.templates_dir = templates_dir
        self.artifact_bucket = artifact_bucket  # '' until the account is known
        self.caller_cidr = caller_cidr
        self.seen = seen
        self.report = report
        self.replace_failed = False  # --replace-failed: delete failed network/service stacks
        self._own_load_balancer: OwnLoadBalancer | None = None
        self._caller_cidr: str | None = None

    def specs(
        self, network_outputs: Mapping[str, str], templates: Templates | None = None
    ) -> list[StackSpec]:
        """What the network and service stacks should be (the service's from the network's
        outputs). With the operator's own network (network.vpc_id) there is only the service.
        """
        templates = templates or Templates.load(self.templates_dir)
        specs = [] if self.spec.network.own else [self.network_spec(templates)]
        if self.spec.network.own:
            network_outputs = self.spec.network.own_outputs()
        return [*specs, self.service_spec(network_outputs, templates)]

    def network_spec(self, templates: Templates) -> StackSpec:
        network = self.spec.network
        return StackSpec(
            self.names.network_stack,
            templates["network"],
            {"AzCount": str(self.spec.azs), "CidrPrefix": network.prefix, "NatMode": network.nat},
            {**self.names.tags, "deployer:role": "network"},
        )

    def service_spec(self, network_outputs: Mapping[str, str], templates: Templates) -> StackSpec:
        spec = self.spec
        return StackSpec(
            self.names.service_stack,
            templates["service"],
            {
                "VpcId": network_outputs.get("VpcId", ""),
                "SubnetIds": network_outputs.get("SubnetIds", ""),
                "AppPort": str(spec.instance.port),
                "TestListenerPort": str(spec.strategy.test_listener_port),
                "TestListenerCidr": self.test_listener_cidr(),
                "CertificateArn": spec.tls.certificate_arn if spec.tls else "",
                "SslPolicy": spec.tls.ssl_policy if spec.tls else DEFAULT_TLS_POLICY,
                "AccessLogsBucket": spec.alb.access_logs_bucket or "",
                "DeletionProtection": "true" if spec.protected else "false",
                "App": self.names.app,
                "Environment": self.names.environment,
                "SettingsPath": self.names.settings_path,
                "ArtifactBucket": self.artifact_bucket(),
                "ArtifactPrefix": f"{self.names.app}/",
                "LogGroupName": self.names.log_group,
                "LogRetentionDays": str(spec.logs.retention_days),
                "LogKmsKeyArn": spec.logs.kms_key_arn or "",
                "PermissionsBoundaryArn": spec.cloudformation.boundary_arn,
                **self.own_load_balancer().parameters(),
            },
            {**self.names.tags, "deployer:role": "service"},
        )

    def test_listener_cidr(self) -> str:
        """Who may reach the test listener (an unreleased build): strategy.test_listener_cidr,
        or this machine's address (auto), asked once per run.
        """
        configured = self.spec.strategy.test_listener_cidr
        if configured != "auto":
            return configured
        if self._caller_cidr is None:
            try:
                self._caller_cidr = self.caller_cidr()
            except BadInput as exc:
                raise BadInput(
                    f"strategy.test_listener_cidr: auto needs this machine's public address: "
                    f"{exc.message}; or set strategy.test_listener_cidr to the CIDR deployer "
                    "runs from (your CI runners' egress)"
                ) from None
        return self._caller_cidr

    def own_load_balancer(self) -> OwnLoadBalancer:
        """service.listener_arn: the operator's load balancer, read from ELB once per run
        (an empty one when deployer makes its own).
        """
        if self._own_load_balancer is None:
            service = self.spec.service
            if service.listener_arn is None or service.test_listener_arn is None:
                self._own_load_balancer = OwnLoadBalancer()
            else:
                self._own_load_balancer = OwnLoadBalancer.read(
                    self.elb, service.listener_arn, service.test_listener_arn
                )
        return self._own_load_balancer

    def ensure(self) -> Infra:
        """The network and service stacks as described, made or updated; their outputs."""
        templates = Templates.load(self.templates_dir)
        made = []
        network_outputs: Mapping[str, str]
        if self.spec.network.own:
            network_outputs = self.spec.network.own_outputs()
        else:
            network_spec = self.network_spec(templates)
            network = ensure_stack(self.cfn, *network_spec, self.report, self.replace_failed)
            network_outputs, made = network.outputs, [network]
        service_spec = self.service_spec(network_outputs, templates)
        service = ensure_stack(self.cfn, *service_spec, self.report, self.replace_failed)
        for stack in (*made, service):  # protected: true turns it on, false turns it off
            if stack.termination_protected != self.spec.protected:
                state = "on" if self.spec.protected else "off"
                self.report(f"infra: turning {state} termination protection of {stack.name}")
                self.cfn.protect(stack.stack_id, self.spec.protected)
        infra = self.seen(Infra.from_outputs(network_outputs, service.outputs))
        for listener in (infra.listener_arn, infra.test_listener_arn):
            if self.elb.tag_weights_rule(listener):
                self.report(f"infra: tagged deployer's weights rule of {listener}")
        return infra

    def existing(self) -> Infra | None:
        """The stacks' outputs as they are, or None when either stack is missing."""
        if self.spec.network.own:
            network_outputs: Mapping[str, str] | None = self.spec.network.own_outputs()
        else:
            network = self.cfn.describe(self.names.network_stack)
            network_outputs = network.outputs if network is not None else None
        service = self.cfn.describe(self.names.service_stack)
        if network_outputs is None or service is None or "ListenerArn" not in service.outputs:
            return None
        return self.seen(Infra.from_outputs(network_outputs, service.outputs))
