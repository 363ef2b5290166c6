"""DynamoDB adapter: the release journal (one table, created if missing): releases, rollbacks
and execs, and the signals an operator sends a release (promote, abort). The lease locks live
in the same table (deployer.aws.lease_lock).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext, error_code
from deployer.core.execs import ExecRecord
from deployer.core.model import Actor, Kind, Outcome, Phase, ReleaseRecord

if TYPE_CHECKING:
    from deployer.aws.lease_lock import Fence

TABLE = "deployer-journal"
LOCK_KEY = "lock"  # the lease lock's item (deployer.aws.lease_lock)
RECORD_PREFIX = "release#"
EXEC_PREFIX = "exec#"
SIGNAL_PREFIX = "signal#"


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

    def send_signal(self, release_id: str, name: str, stamp: str) -> None:
        """An operator's word to a running release (`promote-<step>`, `abort`): an item the
        release reads; sending it twice is sending it once.
        """
        self._ddb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": self.scope},
                "sk": {"S": f"{SIGNAL_PREFIX}{release_id}#{name}"},
                "sent_at": {"S": stamp},
            },
        )

    def has_signal(self, release_id: str, name: str) -> bool:
        found = self._ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": self.scope}, "sk": {"S": f"{SIGNAL_PREFIX}{release_id}#{name}"}},
            ConsistentRead=True,
        )
        return "Item" in found

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
