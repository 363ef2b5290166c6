"""`deployer infra recover`: a network or service stack stuck in UPDATE_ROLLBACK_FAILED is
rolled back the rest of the way (ContinueUpdateRollback), skipping resources only when the
operator names them. Under the lock: no release may touch the stacks meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deployer.errors import BadInput
from deployer.infra.stacks import STACK_DEADLINE_S
from deployer.release.engine import Engine


def recover(engine: Engine, skip: Sequence[str], wait_s: float | None) -> dict[str, Any]:
    engine.check_reachable()
    names = (engine.names.network_stack, engine.names.service_stack)
    with engine.records.locked(wait_s):
        stuck = [
            stack
            for stack in (engine.cfn.describe(name) for name in names)
            if stack is not None and stack.status == "UPDATE_ROLLBACK_FAILED"
        ]
        if not stuck:
            engine.report("infra: no stack is in UPDATE_ROLLBACK_FAILED; nothing to recover")
            return {"recovered": [], "changed": False}
        if skip and len(stuck) > 1:
            raise BadInput(
                "--skip names resources of one stack, but both "
                f"{' and '.join(s.name for s in stuck)} are stuck: recover them one at a time"
            )
        recovered = []
        for stack in stuck:
            reason = engine.cfn.failure_reason(stack.stack_id) or stack.reason
            engine.report(f"infra: {stack.name} is UPDATE_ROLLBACK_FAILED ({reason}); continuing")
            engine.cfn.continue_rollback(stack.stack_id, skip)
            engine.cfn.wait_for(stack.stack_id, "UPDATE_ROLLBACK_COMPLETE", STACK_DEADLINE_S)
            recovered.append(stack.name)
    return {"recovered": recovered, "skipped": list(skip), "changed": True}
