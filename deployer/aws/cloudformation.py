"""CloudFormation adapter: stacks created, updated, deleted and awaited with our poller.

Stacks are awaited by stack id, not name: deployer creates them with OnFailure=DELETE, and a
failed create then deletes itself and is gone by name. By id, DescribeStacks and
DescribeStackEvents still answer, so the failed resource and its reason can be read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext, error_code
from deployer.errors import StackFailed

FAILED_STATES = frozenset(
    {
        "CREATE_FAILED",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
        "ROLLBACK_IN_PROGRESS",
        "DELETE_FAILED",
        "UPDATE_ROLLBACK_COMPLETE",
        "UPDATE_ROLLBACK_FAILED",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_FAILED",
    }
)


@dataclass(frozen=True)
class Stack:
    name: str
    stack_id: str
    status: str
    reason: str
    outputs: Mapping[str, str]
    tags: Mapping[str, str]
    parameters: Mapping[str, str]
    termination_protected: bool = False

    @staticmethod
    def from_api(raw: Mapping[str, Any]) -> Stack:
        return Stack(
            name=raw["StackName"],
            stack_id=raw["StackId"],
            status=raw["StackStatus"],
            reason=raw.get("StackStatusReason", ""),
            outputs={o["OutputKey"]: o["OutputValue"] for o in raw.get("Outputs", [])},
            tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
            parameters={
                p["ParameterKey"]: p.get("ParameterValue", "") for p in raw.get("Parameters", [])
            },
            termination_protected=bool(raw.get("EnableTerminationProtection", False)),
        )


def _params(values: Mapping[str, str]) -> list[dict[str, str]]:
    # Every parameter explicitly: UsePreviousValue is fragile (see notes/moto-probe.md).
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def _tags(values: Mapping[str, str]) -> list[dict[str, str]]:
    # A stack tag's value may not be empty: an empty one is left out (and reads back as "").
    return [{"Key": k, "Value": v} for k, v in values.items() if v]


# The service stack makes the instance role (unnamed: CAPABILITY_IAM is enough).
CAPABILITIES = ["CAPABILITY_IAM"]
CLOCK_SKEW = timedelta(seconds=60)  # events this much older than a wait may still be its own

# A failed update rolls back on its own: wait for that to end before reporting the failure,
# so that the next run meets a stack at rest (UPDATE_ROLLBACK_COMPLETE can be updated again).
SETTLING = frozenset(
    {
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "ROLLBACK_IN_PROGRESS",
        "UPDATE_FAILED",
    }
)


class CloudFormation:
    def __init__(
        self,
        aws: AwsContext,
        poller: Poller,
        on_event: Callable[[str], None] | None = None,
        role_arn: str | None = None,
    ) -> None:
        self._aws = aws
        self._poller = poller
        self._on_event = on_event  # each new stack event while a wait runs, as a line
        self._seen: dict[str, set[str]] = {}
        # The service role stacks run under (cloudformation.role_arn): CloudFormation, not
        # the caller, then needs the rights on what the templates make. Deletes and
        # rollbacks use the role the stack was last given.
        self._role = {"RoleARN": role_arn} if role_arn else {}

    @property
    def _cfn(self) -> Any:
        return self._aws.client("cloudformation")

    def describe(self, name: str) -> Stack | None:
        try:
            stacks = self._cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                return None
            raise
        return Stack.from_api(stacks[0]) if stacks else None

    def list_with_prefix(self, prefix: str) -> list[Stack]:
        found = []
        for page in self._cfn.get_paginator("describe_stacks").paginate():
            for raw in page["Stacks"]:
                if raw["StackName"].startswith(prefix) and raw["StackStatus"] != "DELETE_COMPLETE":
                    found.append(Stack.from_api(raw))
        return found

    def create(
        self,
        name: str,
        template: str,
        parameters: Mapping[str, str],
        tags: Mapping[str, str],
        token: str,
    ) -> str:
        """Create the stack; returns its id. `token` makes retries of this call idempotent."""
        response = self._cfn.create_stack(
            StackName=name,
            TemplateBody=template,
            Parameters=_params(parameters),
            Tags=_tags(tags),
            ClientRequestToken=token,
            OnFailure="DELETE",
            Capabilities=CAPABILITIES,
            **self._role,
        )
        return str(response["StackId"])

    def update(
        self, name: str, template: str, parameters: Mapping[str, str], tags: Mapping[str, str]
    ) -> bool:
        """Apply a change; False when AWS says there is nothing to update."""
        try:
            self._cfn.update_stack(
                StackName=name,
                TemplateBody=template,
                Parameters=_params(parameters),
                Tags=_tags(tags),
                Capabilities=CAPABILITIES,
                **self._role,
            )
        except ClientError as exc:
            if "No updates are to be performed" in str(exc):
                return False
            raise
        return True

    def preview(
        self,
        stack: str,
        template: str,
        parameters: Mapping[str, str],
        tags: Mapping[str, str],
        name: str,
        deadline_s: float = 300,
    ) -> list[dict[str, str]]:
        """What an update would change, from a change set that is deleted afterwards:
        [{resource, type, action, replacement}] (action: add, modify, replace, remove).
        """
        created = self._cfn.create_change_set(
            StackName=stack,
            ChangeSetName=name,
            ChangeSetType="UPDATE",
            TemplateBody=template,
            Parameters=_params(parameters),
            Tags=_tags(tags),
            Capabilities=CAPABILITIES,
            **self._role,
        )
        change_set = str(created["Id"])
        try:

            def check() -> Poll[dict[str, Any]]:
                found = self._cfn.describe_change_set(ChangeSetName=change_set)
                status = str(found.get("Status", ""))
                return Poll(status in ("CREATE_COMPLETE", "FAILED"), status, found)

            found = self._poller.until(f"change set {name}", check, deadline_s)
            if found.get("Status") == "FAILED":
                reason = str(found.get("StatusReason", ""))
                if "didn't contain changes" in reason or "No updates" in reason:
                    return []
                raise StackFailed(_short(stack), "CHANGE_SET_FAILED", reason)
            changes = list(found.get("Changes", []))
            while found.get("NextToken"):
                found = self._cfn.describe_change_set(
                    ChangeSetName=change_set, NextToken=found["NextToken"]
                )
                changes += found.get("Changes", [])
            return [resource_change(c.get("ResourceChange", {})) for c in changes]
        finally:
            self._cfn.delete_change_set(ChangeSetName=change_set)

    def protect(self, stack_id: str, enabled: bool = True) -> None:
        """Termination protection on (or off): a protected stack refuses DeleteStack."""
        self._cfn.update_termination_protection(
            StackName=stack_id, EnableTerminationProtection=enabled
        )

    def delete(self, name: str) -> None:
        self._cfn.delete_stack(StackName=name)

    def wait_for(self, stack_id: str, goal: str, deadline_s: float) -> Stack:
        """Wait until the stack (by id) reaches `goal`; raise StackFailed if it fails instead.

        A create that fails with OnFailure=DELETE goes CREATE_FAILED -> DELETE_IN_PROGRESS ->
        DELETE_COMPLETE; we wait for the delete to end, so a rerun can create it again.
        """

        since = datetime.now(UTC) - CLOCK_SKEW

        def check() -> Poll[Stack]:
            stack = self.describe(stack_id)
            if stack is None:
                raise StackFailed(stack_id, "GONE", "the stack does not exist")
            self.stream_events(stack.stack_id, since)
            if stack.status == goal:
                return Poll(True, stack.status, stack)
            if goal != "DELETE_COMPLETE" and stack.status == "DELETE_IN_PROGRESS":
                return Poll(False, f"{stack.status} (it failed and deletes itself)")
            if stack.status in SETTLING:
                return Poll(False, f"{stack.status} (it failed and rolls back)")
            if stack.status in FAILED_STATES or stack.status == "DELETE_COMPLETE":
                reason = self.failure_reason(stack.stack_id, since) or stack.reason
                raise StackFailed(stack.name, stack.status, reason)
            return Poll(False, stack.status)

        return self._poller.until(f"stack {_short(stack_id)} to reach {goal}", check, deadline_s)

    def stream_events(self, stack_id: str, since: datetime) -> None:
        """Tell each stack event not told yet, oldest first: what CloudFormation is doing."""
        if self._on_event is None:
            return
        try:
            events = self._cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
        except ClientError:
            return  # events are a view; the wait itself reads the stack
        seen = self._seen.setdefault(stack_id, set())
        for event in reversed(events):
            if event["EventId"] in seen:
                continue
            seen.add(event["EventId"])
            stamp = event.get("Timestamp")
            if isinstance(stamp, datetime) and stamp < since:
                continue  # history from before this operation
            reason = event.get("ResourceStatusReason", "")
            self._on_event(
                f"stack {_short(stack_id)}: {event.get('LogicalResourceId')} "
                f"{event.get('ResourceStatus')}" + (f" ({reason})" if reason else "")
            )

    def continue_rollback(self, stack_id: str, skip: Sequence[str]) -> None:
        """UPDATE_ROLLBACK_FAILED -> UPDATE_ROLLBACK_COMPLETE; `skip` names resources to leave
        as they are (only those the operator named).
        """
        self._cfn.continue_update_rollback(StackName=stack_id, ResourcesToSkip=list(skip))

    def wait_deleted(self, stack_id: str, deadline_s: float) -> None:
        """Wait by stack id: a deleted stack's name no longer resolves, its id does."""

        since = datetime.now(UTC) - CLOCK_SKEW

        def check() -> Poll[None]:
            stack = self.describe(stack_id)
            if stack is not None:
                self.stream_events(stack.stack_id, since)
            if stack is None or stack.status == "DELETE_COMPLETE":
                return Poll(True, "DELETE_COMPLETE")
            if stack.status == "DELETE_FAILED":
                raise StackFailed(
                    stack.name, stack.status, self.failure_reason(stack_id) or stack.reason
                )
            return Poll(False, stack.status)

        self._poller.until(f"stack {_short(stack_id)} to be deleted", check, deadline_s)

    def failure_reason(self, stack_id: str, since: datetime | None = None) -> str:
        """The first resource that failed and why: what a human needs to read.

        Events come newest first. Resources cancelled because another one failed, and the
        stack's own summary, are the fallback, not the answer.
        """
        try:
            pages = self._cfn.get_paginator("describe_stack_events").paginate(
                StackName=stack_id, PaginationConfig={"MaxItems": 1000}
            )
            events = [e for page in pages for e in page["StackEvents"]]
        except ClientError:
            return ""
        failed = [
            e
            for e in events
            if str(e.get("ResourceStatus", "")).endswith("FAILED")
            and (
                since is None
                or not isinstance(e.get("Timestamp"), datetime)
                or e["Timestamp"] >= since
            )
        ]
        resources = [
            e
            for e in failed
            if e.get("ResourceType") != "AWS::CloudFormation::Stack"
            and "cancelled" not in str(e.get("ResourceStatusReason", ""))
        ]
        first = (resources or failed or [{}])[-1]
        if not first:
            return ""
        return f"{first.get('LogicalResourceId')}: {first.get('ResourceStatusReason', '')}"


def resource_change(change: Mapping[str, Any]) -> dict[str, str]:
    """One ResourceChange as a plan row. Modify with Replacement True is a replacement (a
    new physical resource); Conditional means it may be, depending on values known later.
    """
    action = str(change.get("Action", "")).lower()
    replacement = str(change.get("Replacement", ""))
    if action == "modify" and replacement == "True":
        action = "replace"
    elif action == "modify" and replacement == "Conditional":
        action = "modify (may replace)"
    return {
        "resource": str(change.get("LogicalResourceId", "")),
        "type": str(change.get("ResourceType", "")),
        "action": action,
    }


def _short(stack_ref: str) -> str:
    """A stack's name from its id (arn:...:stack/NAME/uuid), or the name itself."""
    return stack_ref.split("/")[-2] if stack_ref.startswith("arn:") else stack_ref
