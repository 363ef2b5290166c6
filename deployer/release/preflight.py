"""Everything that can be checked before anything changes: bad input exits 2 here, and AWS
that cannot be reached exits 5. The local checks (templates, playbooks, the artifact) need
no AWS at all, so the CLI runs them before it starts the sandbox; their results are cached by
content (deployer.release.checks), so running them again costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

from botocore.exceptions import ClientError

from deployer.aws.actions import BUCKET_ACTIONS, RELEASE_ACTIONS, SERVER_SIDE_ACTIONS
from deployer.aws.s3 import BucketState
from deployer.aws.session import error_code, unreachable_as_error
from deployer.bake.artifact import Artifact, S3Location, check_tarball, package_directory, sha256_of
from deployer.config.loading import LoadedConfig
from deployer.config.model import DeployConfig
from deployer.core.metrics import FLEET_ALARM_WINDOW_S
from deployer.core.network import network_problems
from deployer.errors import BadInput, Unreachable
from deployer.infra.permissions import LAUNCHES, check_permissions
from deployer.release.account_checks import check_keys_for_auto_scaling, check_quotas, check_vcpus
from deployer.release.checks import CheckCache, check_playbook, check_templates
from deployer.release.engine import BAKE_DEADLINE_S, Engine
from deployer.target import placement


def check_local(
    loaded: LoadedConfig, workdir: Path, report: Callable[[str], None] = lambda _: None
) -> Artifact | None:
    """The target's region, the notify URLs (Apprise knows their schemes), templates
    (cfn-lint), the playbook (syntax check) and a local artifact (the app contract, packaged).
    Returns the packaged artifact, or None for an s3:// one.
    """
    cache = CheckCache(workdir / ".deployer" / "checks.json")
    region = placement(loaded).region
    if loaded.spec.notify:
        from deployer.output.notify import refuse_unknown_urls  # Apprise: only if notifying

        refuse_unknown_urls(loaded.spec.notify, str(loaded.path))
    with _naming(loaded.path):
        templates = loaded.base_dir / "cloudformation"
        check_templates(cache, templates, region, report)
        check_playbook(cache, loaded.resolve(loaded.spec.bake.playbook))
        source = loaded.spec.artifact.source
        if source.startswith("s3://"):
            S3Location.parse(source)  # a malformed URL is bad input before any call
            return None
        return package_directory(
            loaded.resolve(source), workdir / ".deployer" / "artifacts", source
        )


@contextmanager
def _naming(config: Path) -> Iterator[None]:
    """Every error of a check names the config file it came from."""
    try:
        yield
    except BadInput as exc:
        if str(config) in exc.message:
            raise
        raise BadInput(f"{config}: {exc.message}") from None


def check_aws(engine: Engine, artifact: Artifact | None) -> Artifact:
    """AWS answers, the gate alarms exist, and an s3:// artifact is there (downloaded)."""
    with unreachable_as_error(f"reach AWS ({engine.runtime.description})"):
        engine.account = engine.runtime.aws.account_id()
        names = engine.alarm_names()
        found = engine.cloudwatch.alarm_states(names) if names else {}
        if found:
            engine.alarm_window_s = max(a.window_s for a in found.values())
        zones = engine.ec2.availability_zones()
    if not engine.spec.network.own and len(zones) < engine.spec.azs:
        raise BadInput(
            f"{engine.loaded.path}: azs: {engine.spec.azs} Availability Zones asked, but "
            f"{engine.runtime.aws.region} offers {len(zones)} ({', '.join(zones) or 'none'})"
        )
    if engine.spec.network.own:
        check_own_network(engine)
    else:
        check_quotas(engine)
    if engine.spec.service.own:
        check_own_load_balancer(engine)
    missing = [n for n in names if n not in found]
    if missing:
        raise BadInput(
            f"{engine.loaded.path}: gates.alarms: no CloudWatch alarm named {', '.join(missing)}"
        )
    if engine.spec.executor == "stepfunctions":  # the gates' windows are known now
        from deployer.release.server_side import history_problem

        problem = history_problem(
            engine.spec, engine.alarm_window_s, engine.runtime.aws_seconds(1.0)
        )
        if problem:
            raise BadInput(f"{engine.loaded.path}: {problem}")
    return artifact if artifact is not None else download_artifact(engine)


def check_own_network(engine: Engine) -> None:
    """network.vpc_id: the operator's VPC and subnets will do (exit 2 naming the field)."""
    network = engine.spec.network
    assert network.vpc_id is not None
    with unreachable_as_error(f"describe {network.vpc_id}"):
        facts = engine.ec2.network_of(
            network.vpc_id, [*network.public_subnet_ids, *network.private_subnet_ids]
        )
    problems = network_problems(
        facts,
        network.vpc_id,
        network.public_subnet_ids,
        network.private_subnet_ids,
        engine.runtime.aws.region,
        engine.spec.azs,
    )
    if problems:
        raise BadInput(f"{engine.loaded.path}: " + "\n  ".join(problems))


def check_own_load_balancer(engine: Engine) -> None:
    """service.listener_arn: the operator's listeners will do (exit 2 naming the field)."""
    with unreachable_as_error("describe the load balancer of service.listener_arn"):
        own = engine.stacks.own_load_balancer()
        fleets = engine.cfn.list_with_prefix(engine.names.fleet_stack_prefix)
        groups = [s.outputs["TargetGroupArn"] for s in fleets if s.outputs.get("TargetGroupArn")]
        problems = own.problems(
            engine.elb, engine.spec.network.vpc_id or "", engine.runtime.aws.region, groups
        )
    if problems:
        raise BadInput(f"{engine.loaded.path}: " + "\n  ".join(problems))


def download_artifact(engine: Engine) -> Artifact:
    source = engine.spec.artifact.source
    location = S3Location.parse(source)
    cache = engine.workdir / ".deployer" / "artifacts"
    cache.mkdir(parents=True, exist_ok=True)
    download = cache / f"download-{location.key.replace('/', '_')[-60:]}.part"
    try:
        with unreachable_as_error(f"download {source}"):
            engine.s3.download(location.bucket, location.key, download)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise BadInput(
                f"{engine.loaded.path}: artifact.source: {source} does not exist"
            ) from None
        if error_code(exc) in ("403", "AccessDenied", "Forbidden"):
            raise Unreachable(
                f"{engine.loaded.path}: artifact.source: access to {source} is denied: the "
                f"credentials need s3:GetObject on arn:aws:s3:::{location.bucket}/"
                f"{location.key} (deployer-iam.yaml grants it with ArtifactSourceArn). "
                "Nothing was changed."
            ) from None
        raise
    finally:
        if download.exists() and not download.stat().st_size:
            download.unlink()
    try:
        check_tarball(download, source)
        digest = sha256_of(download)
    except BadInput:
        download.unlink(missing_ok=True)
        raise
    final = cache / f"{digest}.tar.gz"
    download.replace(final)
    return Artifact(final, digest, source)


def preflight(
    engine: Engine, bakes: bool = True, needed: Iterable[str] = RELEASE_ACTIONS
) -> Artifact:
    """`needed`: the IAM actions the command makes (deployer.aws.actions)."""
    artifact = check_aws(engine, check_local(engine.loaded, engine.workdir, engine.report))
    needed = set(needed)
    if engine.spec.executor == "stepfunctions" and needed & {"elasticloadbalancing:ModifyRule"}:
        needed |= SERVER_SIDE_ACTIONS
    if bakes and artifact_bucket_missing(engine):
        needed |= BUCKET_ACTIONS
    check_permissions(engine, needed)
    check_vcpus(engine, bakes)
    if needed & LAUNCHES:
        check_keys_for_auto_scaling(engine)
    check_credentials_last(engine, worst_case(engine, bakes))
    return artifact


def artifact_bucket_missing(engine: Engine) -> bool:
    """Whether deployer must make the artifact bucket (no deployer-iam.yaml made it). Its name
    is predictable: a bucket of that name held by another account is refused now (exit 5),
    never used.
    """
    bucket = engine.artifact_bucket
    with unreachable_as_error(f"check the artifact bucket {bucket}"):
        state = engine.s3.bucket_state(bucket)
    if state is BucketState.ELSEWHERE:
        raise Unreachable(
            f"the artifact bucket {bucket} exists but this account ({engine.account}) does not "
            "own it, or may not read it: deployer will not put artifacts there. Deploy "
            "cloudformation/deployer-iam.yaml (it makes the bucket, MakeArtifactBucket=true), "
            "or check the deploy role's s3:ListBucket on it. Nothing was changed."
        )
    return state is BucketState.MISSING


def worst_case(engine: Engine, bakes: bool = True) -> float:
    return worst_case_of(engine.spec, engine.baker_deadline_s, bakes, engine.alarm_window_s)


def worst_case_of(
    spec: DeployConfig,
    bake_s: float = BAKE_DEADLINE_S,
    bakes: bool = True,
    alarm_window_s: float = FLEET_ALARM_WINDOW_S,
) -> float:
    """The run's worst case for a config: what its credentials must outlast. Each step and
    the watch held to their deadlines (the metric gate's evidence, the alarms' windows), and
    every verify hook at its timeout. `alarm_window_s`: the longest gating alarm's window
    (the fleet's own alarms: a minute).
    """
    from deployer.core.deadlines import Deadlines, step_deadline_s, worst_case_seconds
    from deployer.infra.stacks import STACK_DEADLINE_S
    from deployer.release.gating import metric_policy

    strategy, metrics = spec.strategy, spec.gates.metrics
    policy = metric_policy(metrics) if metrics.enabled else None
    # Run in AWS (executor: stepfunctions), the traffic steps, pauses and watch need no
    # credentials of this run: it ends at the hand-over, after the gate.
    here = spec.executor == "local"
    steps = (1 if strategy.kind == "all_at_once" else len(strategy.weights)) if here else 0
    watch = strategy.watch_seconds if here else 0
    hooks = spec.verify.timeout_seconds * (
        len(spec.verify.before_traffic) + steps * len(spec.verify.after_step)
    )
    pauses = len(strategy.pauses_after) * strategy.pause_timeout if here else 0
    return worst_case_seconds(
        Deadlines(
            stack_s=STACK_DEADLINE_S,
            bake_s=bake_s,
            health_s=spec.health_check.deadline_seconds,
            hold_s=step_deadline_s(strategy.bake_seconds, alarm_window_s, policy),
            steps=steps,
            watch_s=step_deadline_s(watch, alarm_window_s, policy) if watch else 0.0,
            hooks_s=hooks,
            pauses_s=float(pauses),
        ),
        bakes,
    )


def check_credentials_last(engine: Engine, worst_case_s: float) -> None:
    """Credentials that end before the run's worst case stop it now (exit 5), unless the
    operator said --allow-short-credentials: a release cut off midway cannot roll back.
    """
    from deployer.aws.identity import expiry
    from deployer.core.deadlines import short_by

    expires = expiry(engine.runtime.aws.session)
    if expires is None:
        return
    left = (expires - engine.now()).total_seconds()
    if short_by(left, worst_case_s) <= 0:
        return
    when = expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if engine.allow_short_credentials:
        engine.report(
            f"warning: the credentials expire at {when}, in {left / 60:.0f} min, before this "
            f"run's worst case ({worst_case_s / 60:.0f} min); going on as asked"
        )
        return
    raise Unreachable(
        f"the AWS credentials expire at {when}, in {left / 60:.0f} min, before this run's worst "
        f"case ({worst_case_s / 60:.0f} min: the sum of its deadlines). A release cut off "
        "midway could not roll back. Get longer credentials (configure-aws-credentials: "
        "role-duration-seconds, within the role's MaxSessionDuration) or pass "
        "--allow-short-credentials. Nothing was changed."
    )
