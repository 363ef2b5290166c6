"""DynamoDB adapter: the release journal (one table, created if missing): releases, rollbacks
and execs, and the lease locks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext, error_code
from deployer.core.execs import ExecRecord
from deployer.core.model import Actor, Kind, Outcome, Phase, ReleaseRecord

TABLE = "deployer-journal"
RECORD_PREFIX = "release#"
EXEC_PREFIX = "exec#"


def record_body(record: ReleaseRecord) -> dict[str, Any]:
    """The record as the journal item's `record` text holds it (JSON)."""
    body = asdict(record)
    body["kind"] = record.kind.value
    body["phase"] = record.phase.value
    body["outcome"] = record.outcome.value
    return body


def record_to_item(scope: str, record: ReleaseRecord) -> dict[str, Any]:
    body = record_body(record)
    return {
        "pk": {"S": scope},
        "sk": {"S": RECORD_PREFIX + record.release_id},
        "version": {"S": record.version},
        "outcome": {"S": record.outcome.value},
        "record": {"S": json.dumps(body, sort_keys=True)},
    }


def item_to_record(item: dict[str, Any]) -> ReleaseRecord:
    body = json.loads(item["record"]["S"])
    body["kind"] = Kind(body["kind"])
    body["phase"] = Phase(body["phase"])
    body["outcome"] = Outcome(body["outcome"])
    body["actor"] = Actor(**body["actor"])
    return ReleaseRecord(**body)


class Journal:
    """Release records for one app/environment (the DynamoDB partition `scope`)."""

    def __init__(self, aws: AwsContext, poller: Poller, scope: str, table: str = TABLE) -> None:
        self._aws = aws
        self._poller = poller
        self.scope = scope
        self.table = table

    @property
    def _ddb(self) -> Any:
        return self._aws.client("dynamodb")

    def ensure_table(self) -> None:
        try:
            status = self._ddb.describe_table(TableName=self.table)["Table"]["TableStatus"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            status = self._create_table()
        if status != "ACTIVE":
            self._poller.until(f"table {self.table} to be ACTIVE", self._table_active, 120)

    def _create_table(self) -> str:
        try:
            self._ddb.create_table(
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if error_code(exc) != "ResourceInUseException":  # created by a concurrent run
                raise
        return "CREATING"

    def _table_active(self) -> Poll[None]:
        status = self._ddb.describe_table(TableName=self.table)["Table"]["TableStatus"]
        return Poll(status == "ACTIVE", status)

    def write(self, record: ReleaseRecord, fence: Fence | None = None) -> bool:
        """Write a record; with a fence, only while that lock (and token) is still held.

        Returns False when the fence no longer holds: another run took the lock over.
        """
        item = record_to_item(self.scope, record)
        if fence is None:
            self._ddb.put_item(TableName=self.table, Item=item)
            return True
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": {"pk": {"S": self.scope}, "sk": {"S": LOCK_KEY}},
                            "ConditionExpression": "lock_id = :id AND #token = :token",
                            "ExpressionAttributeNames": {"#token": "token"},
                            "ExpressionAttributeValues": {
                                ":id": {"S": fence.lock_id},
                                ":token": {"N": str(fence.token)},
                            },
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": item}},
                ]
            )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                return False
            raise
        return True

    def _newest(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        """The scope's items whose key starts with `prefix`, newest first ([] with no table)."""
        try:
            response = self._ddb.query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": self.scope}, ":prefix": {"S": prefix}},
                ScanIndexForward=False,
                Limit=limit,
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []
            raise
        return list(response["Items"])

    def record(self, release_id: str) -> ReleaseRecord | None:
        """One release's record, read consistently (another writer may just have written)."""
        item = self._ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": self.scope}, "sk": {"S": RECORD_PREFIX + release_id}},
            ConsistentRead=True,
        ).get("Item")
        return item_to_record(item) if item else None

    def history(self, limit: int = 50) -> list[ReleaseRecord]:
        """Newest first."""
        return [item_to_record(item) for item in self._newest(RECORD_PREFIX, limit)]

    def write_exec(self, record: ExecRecord) -> None:
        """An exec (`deployer exec`), beside the releases: it holds no lock, so no fence."""
        self._ddb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": self.scope},
                "sk": {"S": EXEC_PREFIX + record.exec_id},
                "version": {"S": record.version},
                "outcome": {"S": record.outcome.value},
                "record": {"S": json.dumps(record.to_json(), sort_keys=True)},
            },
        )

    def execs(self, limit: int = 50) -> list[ExecRecord]:
        """The journalled execs, newest first."""
        items = self._newest(EXEC_PREFIX, limit)
        return [ExecRecord.from_json(json.loads(i["record"]["S"])) for i in items]

    def records_of_app(self, app: str) -> list[ReleaseRecord]:
        """Every release record of `app`, in every environment (the images are shared)."""
        found: list[ReleaseRecord] = []
        try:
            pages = self._ddb.get_paginator("scan").paginate(
                TableName=self.table,
                FilterExpression="begins_with(pk, :app) AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":app": {"S": f"{app}/"},
                    ":prefix": {"S": RECORD_PREFIX},
                },
            )
            for page in pages:
                found.extend(item_to_record(item) for item in page["Items"])
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []
            raise
        return found


LOCK_KEY = "lock"


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
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=self._key,
                UpdateExpression="SET expires = :exp",
                ConditionExpression="lock_id = :id AND #token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={
                    ":exp": {"N": f"{now + lease_s:.3f}"},
                    ":id": {"S": fence.lock_id},
                    ":token": {"N": str(fence.token)},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_pid(self, fence: Fence, pid: int) -> None:
        """The holding process's id (a lock taken back from a hand-over)."""
        self._ddb.update_item(
            TableName=self.table,
            Key=self._key,
            UpdateExpression="SET pid = :pid",
            ConditionExpression="lock_id = :id AND #token = :token",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues={
                ":pid": {"N": str(pid)},
                ":id": {"S": fence.lock_id},
                ":token": {"N": str(fence.token)},
            },
        )

    def hand_over(self, fence: Fence, holder: str, host: str, expires: float) -> bool:
        """Give the lock `fence` holds to a holder that is not a process here (a Step
        Functions execution): same lock id and token, so the journal stays fenced by it; no
        pid, so no host takes it over as a dead process's; held until `expires`, or until
        the holder releases it.
        """
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=self._key,
                UpdateExpression="SET holder = :holder, #host = :host, pid = :zero, #exp = :exp",
                ConditionExpression="lock_id = :id AND #token = :token",
                ExpressionAttributeNames={"#host": "host", "#exp": "expires", "#token": "token"},
                ExpressionAttributeValues={
                    ":holder": {"S": holder},
                    ":host": {"S": host},
                    ":zero": {"N": "0"},
                    ":exp": {"N": f"{expires:.3f}"},
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
