"""A release that runs in AWS (executor: stepfunctions), seen from the CLI: left running
(--detach), followed to its end, attached to again by a rerun of the same version (never a
second execution), or by `deployer follow`.
"""

from __future__ import annotations

from deployer.aws.stepfunctions import StepFunctions
from deployer.core.model import ReleaseRecord
from deployer.core.names import Version
from deployer.errors import BadInput
from deployer.infra.stacks import Infra
from deployer.release.engine import Engine
from deployer.release.following import follow
from deployer.release.locking import SERVER_SIDE
from deployer.release.result import ReleaseResult


def followed(engine: Engine, record: ReleaseRecord, infra: Infra | None, url: str) -> ReleaseResult:
    """A release that runs in AWS: with --detach, said and left running; else followed to
    its end (its outcome, or its failure raised, as the local runner ends).
    """
    left = ReleaseResult(record, url, record.image_reused, engine.phase_seconds)
    if engine.detach:
        engine.report(
            f"release: {record.version} goes on in AWS without this process; "
            f"`deployer follow {record.release_id}` attaches, `deployer status` shows it"
        )
        return left
    try:
        final = follow(engine, record, infra)
    except KeyboardInterrupt:  # only the following stops: nothing in AWS changes
        engine.report(
            f"follow: stopped following; release {record.release_id} of {record.version} "
            f"goes on in AWS: `deployer follow {record.release_id}` attaches again"
        )
        return left
    return ReleaseResult(final, url, final.image_reused, engine.phase_seconds)


def attach(engine: Engine, version: Version) -> ReleaseResult | None:
    """The same version already runs in AWS (a rerun of the job): follow that execution,
    never start a second. Another version is refused by the lock the execution holds.
    """
    holder = engine.lock.lock.peek()
    if holder is None or holder.host != SERVER_SIDE:
        return None
    inflight = engine.records.inflight()
    if inflight is None or not inflight.execution or inflight.version != version.text:
        return None
    if StepFunctions(engine.runtime.aws).describe(inflight.execution) is None:
        # Killed between the hand-over and the start: the lock is freed, and the release
        # continues here from its journalled step (the gate, then the hand-over again).
        engine.report(
            f"release: the execution of release {inflight.release_id} was never started; "
            "continuing the release from its journal"
        )
        engine.lock.lock.release(holder.lock_id)
        return None
    engine.report(
        f"release: {version.text} already runs in AWS (release {inflight.release_id}); "
        "following it, not starting another"
    )
    infra = engine.stacks.existing()
    url = engine.runtime.url_for(infra.load_balancer_dns, infra.listener_port) if infra else ""
    return followed(engine, inflight, infra, url)


def follow_release(engine: Engine, release_id: str | None) -> ReleaseResult:
    """`deployer follow`: the release (default: the one in flight) that runs in AWS."""
    engine.check_reachable()
    record = engine.journal.record(release_id) if release_id else engine.records.inflight()
    if record is None:
        what = (
            f"release {release_id} is not in the journal"
            if release_id
            else ("no release is in flight")
        )
        raise BadInput(f"{what}; nothing to follow")
    if not record.execution:
        raise BadInput(
            f"release {record.release_id} of {record.version} does not run in AWS (executor: "
            "local); `deployer status` shows it"
        )
    infra = engine.stacks.existing()
    url = engine.runtime.url_for(infra.load_balancer_dns, infra.listener_port) if infra else ""
    engine.detach = False
    return followed(engine, record, infra, url)
