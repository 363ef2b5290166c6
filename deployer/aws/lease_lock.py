"""DynamoDB adapter, the lease locks: one item per app/environment (and per bake key) in the
journal's table, taken by a conditional write, extended by a heartbeat, fenced by a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.dynamodb import LOCK_KEY, TABLE
from deployer.aws.session import AwsContext, error_code


@dataclass(frozen=True)
class LockHolder:
    lock_id: str
    holder: str
    host: str
    pid: int
    acquired_at: str
    expires: float
    token: int

    @staticmethod
    def from_item(item: dict[str, Any]) -> LockHolder:
        def text(name: str) -> str:
            return str(item.get(name, {}).get("S", ""))

        def number(name: str) -> float:
            return float(item.get(name, {}).get("N", "0"))

        return LockHolder(
            text("lock_id"),
            text("holder"),
            text("host"),
            int(number("pid")),
            text("acquired_at"),
            number("expires"),
            int(number("token")),
        )


@dataclass(frozen=True)
class Fence:
    """Proof of holding the lock: journal writes are conditional on it (a fencing token)."""

    lock_id: str
    token: int


class LeaseLock:
    """A lease lock per app/environment: a conditional write, an expiry a heartbeat extends,
    and a fencing token that rises with every acquisition.
    """

    def __init__(self, aws: AwsContext, scope: str, table: str = TABLE) -> None:
        self._aws = aws
        self.scope = scope
        self.table = table

    @property
    def _ddb(self) -> Any:
        return self._aws.client("dynamodb")

    @property
    def _key(self) -> dict[str, Any]:
        return {"pk": {"S": self.scope}, "sk": {"S": LOCK_KEY}}

    def peek(self) -> LockHolder | None:
        """The holder, if any; None also when the journal table does not exist yet."""
        try:
            return self.current()
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    def current(self) -> LockHolder | None:
        item = self._ddb.get_item(TableName=self.table, Key=self._key, ConsistentRead=True)
        found = item.get("Item")
        return LockHolder.from_item(found) if found and "lock_id" in found else None

    def try_acquire(
        self,
        lock_id: str,
        holder: str,
        host: str,
        pid: int,
        now: float,
        lease_s: float,
        stamp: str,
        replacing: str | None = None,
    ) -> Fence | None:
        """Take the lock if it is free or its lease has expired (or it is `replacing`)."""
        # Every attribute through a placeholder: TOKEN and others are DynamoDB reserved words.
        names = {
            "#id": "lock_id",
            "#holder": "holder",
            "#host": "host",
            "#pid": "pid",
            "#at": "acquired_at",
            "#exp": "expires",
            "#token": "token",
        }
        condition = "attribute_not_exists(#id) OR #exp < :now"
        values: dict[str, Any] = {
            ":id": {"S": lock_id},
            ":holder": {"S": holder},
            ":host": {"S": host},
            ":pid": {"N": str(pid)},
            ":at": {"S": stamp},
            ":exp": {"N": f"{now + lease_s:.3f}"},
            ":now": {"N": f"{now:.3f}"},
            ":one": {"N": "1"},
        }
        if replacing is not None:
            condition += " OR #id = :old"
            values[":old"] = {"S": replacing}
        try:
            updated = self._ddb.update_item(
                TableName=self.table,
                Key=self._key,
                UpdateExpression="SET #id = :id, #holder = :holder, #host = :host, #pid = :pid, "
                "#at = :at, #exp = :exp ADD #token :one",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return Fence(lock_id, int(updated["Attributes"]["token"]["N"]))

    def heartbeat(self, fence: Fence, now: float, lease_s: float) -> bool:
        return self._fenced(
            fence, "SET expires = :exp", {}, {":exp": {"N": f"{now + lease_s:.3f}"}}
        )

    def hand_over(self, fence: Fence, holder: str, host: str, expires: float, pid: int = 0) -> bool:
        """Give the lock `fence` holds to a holder that is not a process here (a Step
        Functions execution): same lock id and token, so the journal stays fenced by it; no
        pid (0), so no host takes it over as a dead process's; held until `expires`, or until
        the holder releases it. Handed back with this process's pid.
        """
        return self._fenced(
            fence,
            "SET holder = :holder, #host = :host, pid = :pid, #exp = :exp",
            {"#host": "host", "#exp": "expires"},
            {
                ":holder": {"S": holder},
                ":host": {"S": host},
                ":pid": {"N": str(pid)},
                ":exp": {"N": f"{expires:.3f}"},
            },
        )

    def _fenced(
        self, fence: Fence, update: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """An update of the lock item while `fence` still holds it; False if it does not."""
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=self._key,
                UpdateExpression=update,
                ConditionExpression="lock_id = :id AND #token = :token",
                ExpressionAttributeNames={**names, "#token": "token"},
                ExpressionAttributeValues={
                    **values,
                    ":id": {"S": fence.lock_id},
                    ":token": {"N": str(fence.token)},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, lock_id: str) -> bool:
        """Free the lock if `lock_id` holds it; the token stays, so the next one is higher."""
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=self._key,
                UpdateExpression="REMOVE lock_id, holder, #host, pid, acquired_at, #exp",
                ConditionExpression="lock_id = :id",
                ExpressionAttributeNames={"#host": "host", "#exp": "expires"},
                ExpressionAttributeValues={":id": {"S": lock_id}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True
