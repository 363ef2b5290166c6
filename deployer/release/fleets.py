"""Fleet stacks: one CloudFormation stack per release (launch template + Auto Scaling group +
target group), made once and reused by a rerun, never updated in place.
"""

from __future__ import annotations

from deployer.core.decide import fleet_id
from deployer.core.model import Fleet, ReleaseRecord
from deployer.core.names import Version
from deployer.errors import ReleaseFailed, StackFailed
from deployer.infra.stacks import STACK_DEADLINE_S, Infra, Templates, request_token
from deployer.release.engine import Engine


def fleet_parameters(
    engine: Engine, infra: Infra, record: ReleaseRecord, image_id: str
) -> dict[str, str]:
    spec = engine.spec
    cap, hc = spec.capacity, spec.health_check
    capacity = record.capacity
    return {
        "ImageId": image_id,
        "InstanceType": spec.instance.type,
        "VpcId": infra.vpc_id,
        "SubnetIds": infra.private_subnet_ids or infra.subnet_ids,
        "InstanceSecurityGroupId": infra.instance_security_group_id,
        "AppPort": str(spec.instance.port),
        "DesiredCapacity": str(capacity),
        "MinSize": str(min(cap.min, capacity)),
        "MaxSize": str(max(cap.max, capacity)),
        "HealthCheckPath": hc.path,
        "HealthCheckIntervalSeconds": str(hc.interval_seconds),
        "HealthCheckTimeoutSeconds": str(hc.timeout_seconds),
        "HealthyThresholdCount": str(hc.healthy_threshold),
        "UnhealthyThresholdCount": str(hc.unhealthy_threshold),
        "Version": record.version,
        "Digest": record.digest,
        "SettingsPath": engine.names.settings_path,
        "LogGroupName": engine.names.log_group,
        "App": engine.names.app,
        "Environment": engine.names.environment,
        **root_volume(engine, image_id),
        "InstanceProfileArn": infra.instance_profile_arn,
        "ScalingMetric": spec.scaling.metric if spec.scaling else "",
        "ScalingTarget": f"{spec.scaling.target:g}" if spec.scaling else "50",
        "LoadBalancerFullName": infra.load_balancer_full_name,
        "Alarm5xxCount": str(spec.gates.default_alarms.target_5xx_count),
        "AlarmConnectionErrorCount": str(spec.gates.default_alarms.connection_error_count),
        "AlarmErrorPercent": f"{spec.gates.default_alarms.error_percent:g}",
        "AlarmP99Seconds": f"{spec.gates.default_alarms.p99_seconds:g}",
        "AlarmUnhealthyHosts": str(spec.gates.default_alarms.unhealthy_hosts),
        "KmsKeyId": spec.instance.kms_key_id or "",
        "GraceSeconds": str(hc.grace_seconds),
    }


def root_volume(engine: Engine, image_id: str) -> dict[str, str]:
    """The image's root device (/dev/xvda on Amazon Linux, /dev/sda1 on Ubuntu), which the
    launch template's volume settings must name (or they add a second volume), and its size:
    `instance.volume_gb`, never below the image's own snapshot (AWS refuses that).
    """
    image = (engine.ec2.image(image_id) if image_id else None) or {}
    device = str(image.get("RootDeviceName") or "/dev/xvda")
    own = next(
        (
            int(m["Ebs"].get("VolumeSize") or 0)
            for m in image.get("BlockDeviceMappings", [])
            if m.get("DeviceName") == device and "Ebs" in m
        ),
        0,
    )
    wanted = engine.spec.instance.volume_gb or own or 8
    if wanted < own:
        engine.report(
            f"fleet: instance.volume_gb {wanted} is below the image's {own} GiB; using {own}"
        )
    return {"RootDeviceName": device, "VolumeGb": str(max(wanted, own))}


def fleet_name(engine: Engine, record: ReleaseRecord) -> str:
    """Deterministic: the same version, image and settings make the same stack name, so a
    rerun (or a release of a warm fleet's version) finds the stack instead of making another.
    """
    image_id = record.images[engine.runtime.aws.region]
    return engine.names.fleet_stack(Version(record.version), fleet_id(image_id, record.settings))


def ensure_fleet(engine: Engine, infra: Infra, record: ReleaseRecord) -> Fleet:
    """The release's fleet stack (`record.fleet_stack`): the one an earlier run made if it is
    complete and right, else a new one.
    """
    e = engine
    name = record.fleet_stack
    image_id = record.images[e.runtime.aws.region]
    existing = e.cfn.describe(name)
    if existing is not None and existing.status == "DELETE_IN_PROGRESS":
        e.cfn.wait_deleted(existing.stack_id, STACK_DEADLINE_S)
        existing = None
    if existing is not None and existing.status == "CREATE_IN_PROGRESS":
        try:
            existing = e.cfn.wait_for(existing.stack_id, "CREATE_COMPLETE", STACK_DEADLINE_S)
        except StackFailed:
            existing = None  # it failed and deleted itself: make it again
    if existing is not None:
        fleet = e.fleets.fleet_of(existing)
        if (
            existing.status == "CREATE_COMPLETE"
            and fleet.image_id == image_id
            and fleet.desired == record.capacity
        ):
            e.report(f"fleet: {name} exists already (an earlier run made it); reusing it")
            return fleet
        e.report(f"fleet: {name} is {existing.status} with {fleet.desired} instances; replacing it")
        e.fleets.delete(name)
    tags = {
        **e.tags(),
        "deployer:role": "fleet",
        "deployer:version": record.version,
        "deployer:digest": record.digest,
        "deployer:image": image_id,
        "deployer:bake-key": record.bake_key,
        "deployer:settings": record.settings,
        "deployer:release-id": record.release_id,
    }
    e.report(f"fleet: creating {name} ({record.capacity} x {e.spec.instance.type}, {image_id})")
    stack_id = e.cfn.create(
        name,
        Templates.load(e.templates_dir)["fleet"],
        fleet_parameters(e, infra, record, image_id),
        tags,
        token=request_token(name),
    )
    try:
        stack = e.cfn.wait_for(stack_id, "CREATE_COMPLETE", STACK_DEADLINE_S)
    except StackFailed as exc:
        raise ReleaseFailed(f"fleet stack {name} failed: {exc.reason}") from None
    return e.fleets.fleet_of(stack)
