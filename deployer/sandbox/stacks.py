"""Stacks take AWS's time and fail the way AWS's do (the `latency`, `stack_failures` and
`cfn_on_failure` behaviours; see profile.py and latency.py):

- a stack is CREATE_IN_PROGRESS / UPDATE_IN_PROGRESS / DELETE_IN_PROGRESS while its resources
  are made, changed or removed along their dependency graph, with one event per resource;
- a resource named in `stack_failures` fails to create with the given reason. With
  OnFailure=DELETE (as deployer asks) the stack goes CREATE_FAILED -> DELETE_IN_PROGRESS ->
  DELETE_COMPLETE and is gone by name, while its events stay readable by stack id; with the
  default ROLLBACK it ends ROLLBACK_COMPLETE; with DO_NOTHING, CREATE_FAILED;
- an update of a stack that is in progress is refused, as on AWS.

moto creates, updates and deletes at once; we let it, then hold the stack's status back and
play its events on schedule (World.later).
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend, Event, Stack
from moto.cloudformation.parsing import ResourceMap
from moto.cloudformation.responses import CloudFormationResponse

from deployer.sandbox import latency, stack_deletes
from deployer.sandbox.patching import Patches
from deployer.sandbox.template_refs import references
from deployer.sandbox.world import WORLD

log = logging.getLogger("deployer.sandbox.stacks")
# What CreateStack asked for on failure; read by the backend patch in the same request thread.
_ON_FAILURE: contextvars.ContextVar[str] = contextvars.ContextVar("on_failure", default="ROLLBACK")
# Bumped whenever a stack starts a new operation, so transitions of an older one are dropped.
_GENERATION: dict[str, int] = {}


def schedule_of(resources: dict[str, Any], seconds_of: Any) -> dict[str, tuple[float, float]]:
    """Start and end of each resource, each starting when everything it depends on is done."""
    deps: dict[str, set[str]] = {}
    for name, body in resources.items():
        found = set(references(body.get("Properties", {})))
        depends = body.get("DependsOn", [])
        found |= {depends} if isinstance(depends, str) else set(depends)
        deps[name] = {d for d in found if d in resources and d != name}
    timing: dict[str, tuple[float, float]] = {}

    def resolve(name: str, seen: frozenset[str]) -> tuple[float, float]:
        if name in timing:
            return timing[name]
        start = max((resolve(d, seen | {name})[1] for d in deps[name] - seen), default=0.0)
        timing[name] = (start, start + seconds_of(resources[name].get("Type", "")))
        return timing[name]

    for name in resources:
        resolve(name, frozenset())
    return timing


def _created_resources(stack: Stack) -> dict[str, Any]:
    parsed = stack.resource_map._parsed_resources
    return {
        name: body
        for name, body in stack.resource_map._resource_json_map.items()
        if name in parsed and parsed[name] is not None
    }


def _event(stack: Stack, logical: str, rtype: str, status: str, reason: str = "") -> None:
    physical = ""
    resource = stack.resource_map._parsed_resources.get(logical)
    if resource is not None and hasattr(resource, "physical_resource_id"):
        physical = str(resource.physical_resource_id or "")
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical,
            physical_resource_id=physical,
            resource_type=rtype,
            resource_status=status,
            resource_status_reason=reason or None,
            resource_properties=None,
        )
    )


def _new_generation(stack: Stack) -> int:
    _GENERATION[stack.stack_id] = _GENERATION.get(stack.stack_id, 0) + 1
    return _GENERATION[stack.stack_id]


def _at(stack: Stack, generation: int, seconds: float, action: Any) -> None:
    def guarded() -> None:
        if _GENERATION.get(stack.stack_id) == generation:
            action()

    WORLD.later(WORLD.scaled(seconds), guarded)


def _drop_last_event(stack: Stack, status: str) -> None:
    if stack.events and stack.events[-1].resource_status == status:
        stack.events.pop()


def _finish_delete(backend: CloudFormationBackend, stack: Stack) -> None:
    """Delete the stack's resources as CloudFormation does (stack_deletes.py): the stack is
    gone, or DELETE_FAILED naming each resource that could not go and why.
    """
    failures = stack_deletes.delete_resources(stack)
    if failures:
        for name, reason in failures.items():
            rtype = stack.resource_map._resource_json_map[name].get("Type", "")
            _event(stack, name, rtype, "DELETE_FAILED", reason)
        stack.status = "DELETE_FAILED"
        summary = f"The following resource(s) failed to delete: [{', '.join(sorted(failures))}]. "
        _event(stack, stack.name, "AWS::CloudFormation::Stack", "DELETE_FAILED", summary)
        log.warning("%s: DELETE_FAILED: %s", stack.name, failures)
        return
    for export in stack.exports:
        backend.exports.pop(export.name, None)
    backend.stacks.pop(stack.stack_id, None)
    backend.deleted_stacks[stack.stack_id] = stack
    stack.status = "DELETE_COMPLETE"
    _event(stack, stack.name, "AWS::CloudFormation::Stack", "DELETE_COMPLETE")


def _create_stack_response(self: CloudFormationResponse) -> Any:
    on_failure = self._get_param("OnFailure") or (
        "DO_NOTHING" if self._get_param("DisableRollback") in (True, "true") else "ROLLBACK"
    )
    token = _ON_FAILURE.set(str(on_failure))
    try:
        return PATCHES.original("create_stack_response")(self)
    finally:
        _ON_FAILURE.reset(token)


def _create_stack(self: CloudFormationBackend, *args: Any, **kwargs: Any) -> Stack:
    stack = PATCHES.original("create_stack")(self, *args, **kwargs)
    behaviours = WORLD.behaviours
    failing = set(behaviours.stack_failures) & set(stack.resource_map._resource_json_map)
    if not behaviours.latency and not failing:
        return stack
    on_failure = _ON_FAILURE.get() if behaviours.cfn_on_failure else "ROLLBACK"
    _play_create(self, stack, on_failure if failing else "")
    return stack


def _play_create(backend: CloudFormationBackend, stack: Stack, on_failure: str) -> None:
    resources = _created_resources(stack)
    scale = 1.0 if WORLD.behaviours.latency else 0.0
    timing = schedule_of(resources, lambda t: latency.create_seconds(t) * scale)
    failures = WORLD.behaviours.stack_failures
    failed_at = min((timing[n][1] for n in timing if n in failures), default=None)
    generation = _new_generation(stack)
    _drop_last_event(stack, "CREATE_COMPLETE")
    stack.status = "CREATE_IN_PROGRESS"
    start = WORLD.clock()
    for name, (begin, end) in timing.items():
        rtype = resources[name].get("Type", "")
        if failed_at is not None and begin >= failed_at:
            continue
        _at(
            stack,
            generation,
            begin,
            lambda n=name, t=rtype: _event(stack, n, t, "CREATE_IN_PROGRESS"),
        )
        if failed_at is None or end < failed_at:
            _at(
                stack,
                generation,
                end,
                lambda n=name, t=rtype: _event(stack, n, t, "CREATE_COMPLETE"),
            )
    if failed_at is None:
        total = max((end for _, end in timing.values()), default=0.0) + latency.STACK_OVERHEAD_S

        def complete() -> None:
            stack.status = "CREATE_COMPLETE"
            _event(stack, stack.name, "AWS::CloudFormation::Stack", "CREATE_COMPLETE")

        _at(stack, generation, total, complete)
        WORLD.span("stack-create", stack.name, start, start + WORLD.scaled(total))
        return
    WORLD.span("stack-create", stack.name, start, start + WORLD.scaled(failed_at))
    _at(stack, generation, failed_at, lambda: _fail_create(backend, stack, timing, on_failure))


def _fail_create(
    backend: CloudFormationBackend,
    stack: Stack,
    timing: dict[str, tuple[float, float]],
    on_failure: str,
) -> None:
    resources = stack.resource_map._resource_json_map
    failures = WORLD.behaviours.stack_failures
    failed_at = min(timing[n][1] for n in timing if n in failures)
    failed = sorted(n for n in timing if n in failures and timing[n][1] == failed_at)
    for name in failed:
        _event(stack, name, resources[name].get("Type", ""), "CREATE_FAILED", failures[name])
    for name, (begin, end) in timing.items():
        if name not in failed and begin < failed_at <= end:
            rtype = resources[name].get("Type", "")
            _event(stack, name, rtype, "CREATE_FAILED", "Resource creation cancelled")
    summary = f"The following resource(s) failed to create: [{', '.join(failed)}]. "
    if on_failure == "DO_NOTHING":
        stack.status = "CREATE_FAILED"
        _event(stack, stack.name, "AWS::CloudFormation::Stack", "CREATE_FAILED", summary)
        return
    deleting = on_failure == "DELETE"
    if deleting:  # CREATE_FAILED, then DELETE_IN_PROGRESS -> DELETE_COMPLETE (gone by name)
        _event(stack, stack.name, "AWS::CloudFormation::Stack", "CREATE_FAILED", summary)
        status, requested = "DELETE_IN_PROGRESS", "Delete requested by user."
    else:
        status, requested = "ROLLBACK_IN_PROGRESS", "Rollback requested by user."
    stack.status = status
    _event(stack, stack.name, "AWS::CloudFormation::Stack", status, summary + requested)
    seconds = _delete_seconds(stack)
    generation = _new_generation(stack)
    start = WORLD.clock()
    WORLD.span("stack-delete", stack.name, start, start + WORLD.scaled(seconds))

    def finish() -> None:
        if deleting:
            _finish_delete(backend, stack)
            return
        try:
            stack.resource_map.delete()
        except Exception as exc:
            log.warning("rolling back the resources of %s: %s", stack.name, exc)
        stack.status = "ROLLBACK_COMPLETE"
        _event(stack, stack.name, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE")

    _at(stack, generation, seconds, finish)


def _delete_seconds(stack: Stack) -> float:
    if not WORLD.behaviours.latency:
        return 0.0
    timing = schedule_of(_created_resources(stack), latency.delete_seconds)
    return max((end for _, end in timing.values()), default=0.0)


def _find_stack(backend: CloudFormationBackend, name_or_id: str) -> Stack | None:
    if name_or_id in backend.stacks:
        return backend.stacks[name_or_id]
    return next((s for s in backend.stacks.values() if s.name == name_or_id), None)


def _delete_stack(self: CloudFormationBackend, name_or_stack_id: str) -> None:
    stack = _find_stack(self, name_or_stack_id)
    if stack is None:
        PATCHES.original("delete_stack")(self, name_or_stack_id)
        return
    stack_deletes.refuse_if_protected(stack)
    if not WORLD.behaviours.latency:
        _new_generation(stack)  # a scheduled completion must not revive it
        _finish_delete(self, stack)
        return
    if stack.status == "DELETE_IN_PROGRESS":
        return  # as on AWS: deleting a stack that is being deleted changes nothing
    generation = _new_generation(stack)
    stack.status = "DELETE_IN_PROGRESS"
    _event(stack, stack.name, "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS", "User Initiated")
    seconds = _delete_seconds(stack)
    start = WORLD.clock()
    WORLD.span("stack-delete", stack.name, start, start + WORLD.scaled(seconds))
    _at(stack, generation, seconds, lambda: _finish_delete(self, stack))


def _update_stack(self: CloudFormationBackend, name: str, *args: Any, **kwargs: Any) -> Stack:
    current = _find_stack(self, name)
    if current is not None and current.status.endswith("_IN_PROGRESS") and WORLD.behaviours.latency:
        raise ValidationError(
            name, f"Stack:{current.stack_id} is in {current.status} state and can not be updated."
        )
    before = dict(current.template_dict.get("Resources", {})) if current is not None else {}
    stack = PATCHES.original("update_stack")(self, name, *args, **kwargs)
    if not WORLD.behaviours.latency:
        return stack
    after = stack.template_dict.get("Resources", {})
    changed = {n: body for n, body in after.items() if before.get(n) != body} | {
        n: body for n, body in before.items() if n not in after
    }
    seconds = (
        max((end for _, end in schedule_of(changed, latency.update_seconds).values()), default=0.0)
        + latency.STACK_OVERHEAD_S
    )
    generation = _new_generation(stack)
    _drop_last_event(stack, "UPDATE_COMPLETE")
    stack.status = "UPDATE_IN_PROGRESS"
    start = WORLD.clock()
    WORLD.span("stack-update", stack.name, start, start + WORLD.scaled(seconds))

    def complete() -> None:
        stack.status = "UPDATE_COMPLETE"
        _event(stack, stack.name, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE")

    _at(stack, generation, seconds, complete)
    return stack


PATCHES = Patches()
PATCHES.add("create_stack", CloudFormationBackend, "create_stack", _create_stack)
PATCHES.add("delete_stack", CloudFormationBackend, "delete_stack", _delete_stack)
PATCHES.add("update_stack", CloudFormationBackend, "update_stack", _update_stack)
PATCHES.add("create_stack_response", CloudFormationResponse, "create_stack", _create_stack_response)
apply = PATCHES.apply
restore = PATCHES.restore


def check_internals() -> list[str]:
    """What moved in moto that these patches rely on (empty when nothing did)."""
    moved = []
    for names, wanted, label in [
        (ResourceMap.__init__.__code__.co_names, "_parsed_resources", "ResourceMap._parsed"),
        (ResourceMap.__init__.__code__.co_names, "_resource_json_map", "ResourceMap._json"),
        (Stack.__init__.__code__.co_names, "events", "Stack.events"),
        (CloudFormationBackend.__init__.__code__.co_names, "deleted_stacks", "deleted_stacks"),
    ]:
        if wanted not in names:
            moved.append(label)
    for key, prefix in [
        ("delete_stack", ["self", "name_or_stack_id"]),
        ("update_stack", ["self", "name"]),
    ]:
        params = list(inspect.signature(PATCHES.original(key)).parameters)
        if params[: len(prefix)] != prefix:
            moved.append(f"{key}{params}")
    event_params = list(inspect.signature(Event.__init__).parameters)[1:]
    if event_params[:3] != ["stack_id", "stack_name", "logical_resource_id"]:
        moved.append(f"Event{event_params}")
    return moved
