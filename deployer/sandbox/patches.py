"""The only place deployer changes moto's behaviour, so that the sandbox behaves like AWS.

1. Target health: moto answers "healthy" for every registered target. We answer from the
   sandbox prober's real HTTP probes instead.
2. CreateImage: moto records an image but keeps no content. We snapshot the builder host's
   root directory, so instances launched from the image boot what the bake installed.
3. CreateImage tags the image's snapshots as AWS does (moto raises for "snapshot").
4. GetConsoleOutput answers what the sandbox host printed: cloud-init's SSH host keys.
5. Bucket policies see every request as TLS: the sandbox's S3 stands for S3's HTTPS
   endpoint, and moto ignores a Bool condition (it counts as met), so a TLS-only policy
   (Deny when aws:SecureTransport is false) would deny everything.
6. DynamoDB conditional writes: moto evaluates the condition and writes without a lock, so
   two concurrent requests can both pass `attribute_not_exists`. DynamoDB makes each write
   atomic; we serialize moto's writes so the release lock means what it says.
7. CopyImage applies its TagSpecifications to the copy and its snapshots, as AWS does (moto
   ignores them).

moto is pinned to a minor version; `check_internals` fails loudly if what we patch moves, and
tests/integration/test_sandbox.py calls it. The `aws` profile's behaviours live beside
this module, one file per kind (lifecycle.py, stacks.py, api_rules.py, gateway.py, faults.py), and
their internals are checked here too.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult
from moto.core.types import Base64EncodedString
from moto.core.utils import utcnow
from moto.dynamodb.models import DynamoDBBackend
from moto.ec2.models.amis import AmiBackend
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.general import SAMPLE_CONSOLE_OUTPUT, General
from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.models import FakeBucket

from deployer.sandbox import (
    agent,
    api_rules,
    ec2_rules,
    image_catalog,
    lifecycle,
    logs_api,
    run_command,
    sessions,
    stack_deletes,
    stack_updates,
    stacks,
)

HealthLookup = Callable[[str, str], tuple[str, str, str] | None]
ImageCapture = Callable[[str, str], None]
ConsoleOf = Callable[[str], str]

_ORIGINAL_HEALTH_FOR = FakeTargetGroup.health_for
_ORIGINAL_CREATE_IMAGE = AmiBackend.create_image
_ORIGINAL_CONSOLE = General.get_console_output
_ORIGINAL_BUCKET_PERMISSION = FakeBucket.get_permission
_ORIGINAL_COPY_IMAGE = AmisResponse.copy_image
DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_ORIGINAL_DYNAMODB = {name: getattr(DynamoDBBackend, name) for name in DYNAMODB_WRITES}
_DYNAMODB_WRITE_LOCK = threading.RLock()  # transact_write_items calls put_item


class MotoInternalsChanged(RuntimeError):
    pass


def check_internals() -> None:
    """Raise if the moto internals patched below are not what this module was written against."""
    health_params = list(inspect.signature(_ORIGINAL_HEALTH_FOR).parameters)
    if health_params != ["self", "target", "ec2_backend"]:
        raise MotoInternalsChanged(f"FakeTargetGroup.health_for{health_params}")
    image_params = list(inspect.signature(_ORIGINAL_CREATE_IMAGE).parameters)
    if image_params != ["self", "instance_id", "name", "description", "tag_specifications"]:
        raise MotoInternalsChanged(f"AmiBackend.create_image{image_params}")
    status_params = list(inspect.signature(FakeHealthStatus.__init__).parameters)
    if status_params != [
        "self",
        "instance_id",
        "port",
        "health_port",
        "status",
        "reason",
        "description",
    ]:
        raise MotoInternalsChanged(f"FakeHealthStatus{status_params}")
    moved = (
        lifecycle.check_internals()
        + stacks.check_internals()
        + api_rules.check_internals()
        + stack_deletes.check_internals()
        + stack_updates.check_internals()
        + ec2_rules.check_internals()
        + sessions.check_internals()
        + agent.check_internals()
        + logs_api.check_internals()
        + run_command.check_internals()
        + image_catalog.check_internals()
    )
    if moved:
        raise MotoInternalsChanged(", ".join(moved))
    for attribute in (
        "targets",
        "health_check_path",
        "health_check_interval_seconds",
        "healthy_threshold_count",
        "unhealthy_threshold_count",
        "matcher",
    ):
        if attribute not in FakeTargetGroup.__init__.__code__.co_names:
            raise MotoInternalsChanged(f"FakeTargetGroup.{attribute}")
    # The fronts evaluate listener rules as an ALB does (deployer's weights live in one).
    from moto.elbv2.models import FakeListener, FakeListenerRule

    if "_non_default_rules" not in FakeListener.__init__.__code__.co_names:
        raise MotoInternalsChanged("FakeListener._non_default_rules")
    for attribute in ("conditions", "actions", "priority"):
        if attribute not in FakeListenerRule.__init__.__code__.co_names:
            raise MotoInternalsChanged(f"FakeListenerRule.{attribute}")


def apply(health: HealthLookup, capture: ImageCapture, console: ConsoleOf) -> None:
    check_internals()

    def health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> Any:
        moto_says = _ORIGINAL_HEALTH_FOR(self, target, ec2_backend)
        if moto_says.status != "healthy":  # unregistered, draining, stopped: moto is right
            return moto_says
        observed = health(self.arn, target["Id"])
        if observed is None:
            observed = (
                "initial",
                "Elb.RegistrationInProgress",
                "Target registration is in progress",
            )
        state, reason, description = observed
        return FakeHealthStatus(
            moto_says.instance_id,
            moto_says.port,
            moto_says.health_check_port,
            state,
            reason or None,
            description or None,
        )

    def create_image(
        self: AmiBackend,
        instance_id: str,
        name: str,
        description: str,
        tag_specifications: list[dict[str, Any]],
    ) -> Any:
        # AWS tags the snapshots too (ResourceType "snapshot"); moto raises for it.
        snapshot_tags = [
            tag
            for spec in tag_specifications
            if spec.get("ResourceType") == "snapshot"
            for tag in spec.get("Tags", [])
        ]
        images = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
        ami = _ORIGINAL_CREATE_IMAGE(self, instance_id, name, description, images)
        if snapshot_tags:
            ami.ebs_snapshot.add_tags({t["Key"]: t["Value"] for t in snapshot_tags})
        capture(instance_id, ami.id)
        return ami

    def get_console_output(self: General) -> Any:
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        text = SAMPLE_CONSOLE_OUTPUT + console(instance.id)
        result = {
            "InstanceId": instance.id,
            "Timestamp": utcnow(),
            "Output": Base64EncodedString.from_raw_string(text),
        }
        return ActionResult(result)

    General.get_console_output = get_console_output  # type: ignore[method-assign]

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy.decode())
        statements = policy.get("Statement", [])
        policy["Statement"] = [
            s
            for s in (statements if isinstance(statements, list) else [statements])
            if not _only_without_tls(s)
        ]
        if not policy["Statement"]:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]
    AmisResponse.copy_image = copy_image_tagged  # type: ignore[method-assign]

    FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]
    AmiBackend.create_image = create_image  # type: ignore[method-assign]
    for name, original in _ORIGINAL_DYNAMODB.items():
        setattr(DynamoDBBackend, name, _serialized(original))


def copy_image_tagged(self: AmisResponse) -> Any:
    """CopyImage, then its TagSpecifications on the copy ("image") and its snapshots."""
    result = _ORIGINAL_COPY_IMAGE(self)
    specs = self._get_param("TagSpecification", []) or self._get_param("TagSpecifications", [])
    image_id = result.result["ImageId"]  # type: ignore[index]
    ami = self.ec2_backend.amis.get(image_id)
    for spec in specs if isinstance(specs, list) else [specs]:
        tags = {t["Key"]: t["Value"] for t in spec.get("Tag", spec.get("Tags", []))}
        if spec.get("ResourceType") == "image":
            self.ec2_backend.create_tags([image_id], tags)
        elif spec.get("ResourceType") == "snapshot" and getattr(ami, "ebs_snapshot", None):
            ami.ebs_snapshot.add_tags(tags)
    return result


def _only_without_tls(statement: dict[str, Any]) -> bool:
    """A statement that applies only to requests without TLS (never, in the sandbox)."""
    condition = statement.get("Condition", {})
    value = condition.get("Bool", {}).get("aws:SecureTransport")
    return str(value).lower() == "false"


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_WRITE_LOCK:
            return method(*args, **kwargs)

    return write


def restore() -> None:
    FakeBucket.get_permission = _ORIGINAL_BUCKET_PERMISSION  # type: ignore[method-assign]
    AmisResponse.copy_image = _ORIGINAL_COPY_IMAGE  # type: ignore[method-assign]
    General.get_console_output = _ORIGINAL_CONSOLE  # type: ignore[method-assign]
    FakeTargetGroup.health_for = _ORIGINAL_HEALTH_FOR  # type: ignore[method-assign]
    AmiBackend.create_image = _ORIGINAL_CREATE_IMAGE  # type: ignore[method-assign]
    for name, original in _ORIGINAL_DYNAMODB.items():
        setattr(DynamoDBBackend, name, original)
