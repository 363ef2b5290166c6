"""gc, status, history, plan and unlock: the use cases besides release, rollback and abort."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from deployer.core.decide import WARM_STACK_STATES, failed_fleets, in_flight, plan_release
from deployer.core.durations import PlannedTime, TimingInputs, predict, total_s
from deployer.core.health import assess_target_health
from deployer.core.metrics import FLEET_ALARM_WINDOW_S
from deployer.core.model import Fleet, LiveState, Outcome, ReleaseRecord, TargetState
from deployer.core.names import Version
from deployer.core.rollout import Step
from deployer.core.steps import table_digest
from deployer.errors import NeedsHuman
from deployer.release.engine import Engine
from deployer.release.locking import describe_holder, unlock


def _retired_since(fleet: Fleet, history: list[ReleaseRecord]) -> str:
    """When `fleet` stopped taking traffic (or failed), from the journal; '' if unknown."""
    times = [
        r.finished_at
        for r in history
        if r.finished_at
        and (
            (r.previous_fleet == fleet.stack_name and r.outcome is Outcome.SUCCEEDED)
            or (r.fleet_stack == fleet.stack_name and r.outcome is Outcome.FAILED)
        )
    ]
    return max(times) if times else ""


def fleets_past_the_window(engine: Engine, live: LiveState) -> list[Fleet]:
    """Fleets that left service more than rollback_window ago, and every fleet a failed
    release put aside (never a rollback target: it goes at once).
    """
    current = live.live_fleet
    history = engine.journal.history(limit=200)
    now = engine.now()
    inflight = in_flight(history)
    keep = {current.stack_name if current else "", inflight.fleet_stack if inflight else ""} - {""}
    doomed = failed_fleets(live, history, keep)
    for fleet in live.fleets:
        if fleet.stack_name in keep or fleet in doomed:
            continue
        since = _retired_since(fleet, history)
        age = (
            (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
            if since
            else float("inf")
        )
        if age >= engine.spec.rollback_window:
            doomed.append(fleet)
    return doomed


def gc(engine: Engine, wait_s: float | None, dry_run: bool = False) -> dict[str, Any]:
    """Retire fleets that left service more than rollback_window ago, this app's images
    beyond bake.keep_images that nothing protects, and leftovers of killed bakes. With
    `dry_run`, only say what would go.
    """
    from deployer.ops.retention import collect_images, leftovers

    engine.check_reachable()
    infra = engine.stacks.existing()
    live = engine.fleets.observe(infra) if infra else LiveState()
    planned = {
        "retired": [f.stack_name for f in fleets_past_the_window(engine, live)],
        "images": collect_images(engine, dry_run=True),
        "leftovers": leftovers(engine, dry_run=True),
        "dry_run": True,
    }
    if dry_run:
        return planned
    if not (planned["retired"] or planned["images"] or planned["leftovers"]):
        return {**planned, "dry_run": False}  # nothing to remove: no lock taken
    with engine.records.locked(wait_s):
        infra = engine.stacks.existing()
        retired: list[str] = []
        if infra is not None:
            live = engine.fleets.observe(infra)
            doomed = fleets_past_the_window(engine, live)
            if doomed:
                gone = {f.target_group_arn for f in doomed}
                weights = {arn: w for arn, w in live.weights.items() if arn not in gone}
                if weights != dict(live.weights):
                    engine.traffic.set_weights(infra.listener_arn, weights)
                problems = engine.fleets.retire(engine.fleets.observe(infra), doomed)
                if problems:
                    raise NeedsHuman(f"gc: {problems}")
                retired = [f.stack_name for f in doomed]
        return {
            "retired": retired,
            "images": collect_images(engine, dry_run=False),
            "leftovers": leftovers(engine, dry_run=False),
            "dry_run": False,
        }


# The services `status` reads; their clients are made before the reads go out side by side
# (a boto3 client is thread-safe once made, its creation is not).
STATUS_SERVICES = ("cloudformation", "dynamodb", "elbv2")


def status(engine: Engine) -> dict[str, Any]:
    """What is live, the fleets and their health, the last change, the lock and the stacks.
    The independent reads go out together: on AWS each is a round trip of tens of ms.
    """
    for service in STATUS_SERVICES:
        engine.runtime.aws.client(service)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="status") as pool:
        reading_infra = pool.submit(engine.stacks.existing)
        reading_history = pool.submit(engine.journal.history, 20)
        # The lock is read whatever the journal holds: a first release killed while it made
        # the network holds it before it journals anything.
        reading_lock = pool.submit(engine.lock.lock.peek)
        reading_stacks = pool.submit(infra_stacks, engine)
        infra, history = reading_infra.result(), reading_history.result()
        holder, stacks = reading_lock.result(), reading_stacks.result()
        live = engine.fleets.observe(infra) if infra is not None else LiveState()
        fleets = sorted(live.fleets, key=lambda f: -f.weight)
        healths = list(
            pool.map(
                lambda f: (
                    engine.elb.target_health(f.target_group_arn) if f.target_group_arn else []
                ),
                fleets,
            )
        )
    inflight = in_flight(history)
    # A no-op is not what a reader looks for (and is no longer journalled): the last change.
    last = next((r for r in history if r.outcome is not Outcome.NOOP), None)
    result: dict[str, Any] = {
        "app": engine.names.app,
        "environment": engine.names.environment,
        "target": engine.runtime.description,
        "live_version": None,
        "url": None,
        "fleets": [],
        "last": record_json(last) if last else None,
        "in_flight": record_json(inflight) if inflight else None,
        "lock": describe_holder(holder, engine.lock.clock()) if holder else None,
        "infra": stacks,
        "advice": _advice(last, inflight) or _infra_advice(stacks, holder is not None),
        "warnings": [],
    }
    if inflight is not None and inflight.execution:
        result["execution"] = execution_status(engine, inflight)
        result["advice"] = (
            f"release {inflight.release_id} of {inflight.version} runs in AWS: `deployer "
            "follow` shows it; `deployer abort` stops it and puts traffic back"
        )
    if infra is None:
        return result
    current = live.live_fleet
    result["live_version"] = current.version if current else None
    result["url"] = engine.runtime.url_for(infra.load_balancer_dns, infra.listener_port)
    warnings: list[str] = []
    for fleet, health in zip(fleets, healths, strict=True):
        healthy = assess_target_health(health, fleet.desired).passed
        is_live = current is not None and fleet.stack_name == current.stack_name
        up = fleet.stack_status in WARM_STACK_STATES and fleet.desired > 0
        role = "live" if is_live else ("warm" if up and healthy else "cold" if not up else "sick")
        if is_live and not healthy:
            warnings.append(
                f"the live fleet {fleet.version} is not healthy "
                f"({_healthy_count(health)}/{fleet.desired} healthy): `deployer logs "
                f"{fleet.version}` shows its instances' lines; `deployer rollback` switches to "
                "the previous fleet if it is warm"
            )
        elif role == "sick":
            warnings.append(
                f"{fleet.version} is not healthy ({_healthy_count(health)}/{fleet.desired} "
                f"healthy): `deployer logs {fleet.version}` shows why"
            )
        result["fleets"].append(
            {
                "version": fleet.version,
                "stack": fleet.stack_name,
                "weight": fleet.weight,
                "desired": fleet.desired,
                "image": fleet.image_id,
                "status": fleet.stack_status,
                "healthy": _healthy_count(health),
                "role": role,
            }
        )
    result["warnings"] = warnings
    return result


def execution_status(engine: Engine, record: ReleaseRecord) -> dict[str, Any]:
    """The Step Functions execution running `record`: its status, ARN, and the step it
    journalled last.
    """
    from deployer.aws.stepfunctions import StepFunctions

    found = StepFunctions(engine.runtime.aws).describe(record.execution)
    step = record.phase.value
    if record.step >= 0:
        step = (
            f"pause after step {record.step + 1}"
            if step == "pause"
            else f"{step} {record.step + 1}"
        )
    return {
        "arn": record.execution,
        "status": found.status if found else "MISSING",
        "step": step,
    }


def infra_stacks(engine: Engine) -> list[dict[str, str]]:
    """The network and service stacks as CloudFormation has them (what a release makes
    before it journals anything), by name and status.
    """
    names = [engine.names.service_stack]
    if not engine.spec.network.own:
        names.insert(0, engine.names.network_stack)
    found = []
    for name in names:
        stack = engine.cfn.describe(name)
        if stack is not None:
            found.append({"stack": stack.name, "status": stack.status})
    return found


def _infra_advice(stacks: list[dict[str, str]], locked: bool) -> str:
    busy = [f"{s['stack']} {s['status']}" for s in stacks if s["status"].endswith("_IN_PROGRESS")]
    failed = [f"{s['stack']} {s['status']}" for s in stacks if s["status"].endswith("_FAILED")]
    if busy:
        who = "the run holding the lock" if locked else "a run"
        return (
            f"{who} is changing {', '.join(busy)}; wait for it, or if that run is gone, rerun "
            "`deployer release VERSION` (it waits for the stack, then goes on)"
        )
    if failed:
        return (
            f"{', '.join(failed)}: rerun `deployer release VERSION --replace-failed`, or "
            "`deployer infra recover` for UPDATE_ROLLBACK_FAILED"
        )
    return ""


def _healthy_count(health: list[Any]) -> int:
    return sum(1 for t in health if t.state is TargetState.HEALTHY)


def _advice(last: ReleaseRecord | None, inflight: ReleaseRecord | None) -> str:
    if inflight is not None:
        return (
            f"release {inflight.release_id} of {inflight.version} stopped at "
            f"{inflight.phase.value}: rerun `deployer release {inflight.version}` to finish "
            "it, or `deployer abort` to roll it back"
        )
    if last is not None and last.reason.startswith("needs a human"):
        return f"{last.reason}; check the listener, then `deployer rollback` or `deployer abort`"
    return ""


def history(engine: Engine, limit: int) -> list[dict[str, Any]]:
    return [record_json(r) for r in engine.journal.history(limit)]


def plan(engine: Engine, version_text: str, rebake: bool = False) -> dict[str, Any]:
    """What `deployer release VERSION` would do now. Reads only; changes nothing."""
    from deployer.infra.plan import plan_infra
    from deployer.release.baking import bake_plan
    from deployer.release.loop import identity, table_of
    from deployer.release.preflight import check_local, download_artifact

    version = Version.parse(version_text)
    artifact = check_local(engine.loaded, engine.workdir, engine.report)
    engine.check_reachable()
    if artifact is None:
        artifact = download_artifact(engine)
    infra = engine.stacks.existing()
    live = engine.fleets.observe(infra) if infra else LiveState()
    wanted = identity(engine, version, artifact)
    decided = plan_release(live, wanted, engine.spec.capacity.desired, force=rebake)
    baking = bake_plan(engine, version, artifact)
    if rebake:
        baking = {**baking, "bake": True, "changed": ["--rebake"]}
    strategy = engine.spec.strategy
    table = table_of(engine, has_blue=decided.blue is not None)  # the one the loop runs
    steps = [row.traffic for row in table if row.traffic is not None]
    keep = {f.stack_name for f in (decided.blue, decided.reuse_fleet) if f is not None}
    retire = [f.stack_name for f in live.fleets if f.stack_name not in keep]
    runner = []
    if engine.spec.executor == "stepfunctions" and infra is not None and decided.blue:
        from deployer.release.server_side import runner_spec

        runner = [runner_spec(engine, infra.listener_arn, table, table_digest(table))]
    infra_rows = plan_infra(engine, runner)
    timing = (
        [] if decided.noop else predicted_times(engine, infra_rows, baking["bake"], steps, retire)
    )
    return {
        "version": version.text,
        "target": engine.runtime.description,
        "region": engine.runtime.aws.region,
        "digest": artifact.digest,
        "bake_key": wanted.bake_key,
        "noop": decided.noop,
        "reason": decided.reason,
        "creates_infra": infra is None,
        "infra": infra_rows,
        "image": baking["image"],
        "bake": baking["bake"] and not decided.noop,
        "bake_changed": [] if decided.noop else baking["changed"],
        "reuse_fleet": decided.reuse_fleet.stack_name if decided.reuse_fleet else None,
        "capacity": decided.capacity,
        "blue": decided.blue.version if decided.blue else None,
        "steps": []
        if decided.noop
        else [
            {
                "name": s.name,
                "green_weight": s.green_weight,
                "blue_weight": s.blue_weight,
                "hold_seconds": s.hold_seconds,
            }
            for s in steps
        ],
        "watch_seconds": 0 if decided.noop else strategy.watch_seconds,
        "table": table_digest(table),
        "retire": [] if decided.noop else retire,
        "timing": [{"what": r.what, "seconds": r.seconds, "why": r.why} for r in timing],
        "predicted_seconds": total_s(timing),
        "in_flight": record_json(inflight) if (inflight := engine.records.inflight()) else None,
    }


def predicted_times(
    engine: Engine,
    infra_rows: list[dict[str, Any]],
    bakes: bool,
    steps: list[Step],
    retire: list[str],
) -> list[PlannedTime]:
    """How long each part of the release would take on AWS (core.durations)."""
    from deployer.release.gating import metric_policy

    spec = engine.spec
    configured = list(spec.gates.alarms)
    if configured:
        windows = [a.window_s for a in engine.cloudwatch.alarm_states(configured).values()]
    else:  # the fleet's own 5xx and latency alarms: one minute
        windows = [FLEET_ALARM_WINDOW_S]
    return predict(
        TimingInputs(
            stacks_to_create=[
                r["stack"].rsplit("-", 1)[-1] for r in infra_rows if r["action"] == "create"
            ],
            stacks_to_update=sum(1 for r in infra_rows if r["action"] == "update"),
            bakes=bakes,
            regions=len(engine.runtime.image_regions),
            health_interval_s=float(spec.health_check.interval_seconds),
            steps=[(s.name, float(s.hold_seconds)) for s in steps],
            watch_s=float(spec.strategy.watch_seconds),
            alarm_window_s=max(windows, default=0.0),
            metrics=metric_policy(spec.gates.metrics) if spec.gates.metrics.enabled else None,
            retires=len(retire),
        )
    )


def unlock_scope(engine: Engine, lock_id: str) -> str:
    engine.check_reachable()
    holder = unlock(engine.lock.lock, lock_id)
    return f"released {lock_id}, held by {holder.holder} since {holder.acquired_at}"


def record_json(record: ReleaseRecord) -> dict[str, Any]:
    return {
        "release_id": record.release_id,
        "kind": record.kind.value,
        "version": record.version,
        "outcome": record.outcome.value,
        "phase": record.phase.value,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "actor": str(record.actor),
        "digest": record.digest,
        "images": dict(record.images),
        "fleet_stack": record.fleet_stack,
        "previous_fleet": record.previous_fleet,
        "weights": dict(record.weights),
        "step": record.step,
        "reason": record.reason,
        "cleanup": record.cleanup,
        "execution": record.execution,
    }
