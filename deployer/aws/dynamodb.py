"""DynamoDB adapter: the release journal (one table, created if missing)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext, error_code
from deployer.core.model import Actor, Kind, Outcome, Phase, ReleaseRecord

TABLE = "deployer-journal"
RECORD_PREFIX = "release#"


def record_to_item(scope: str, record: ReleaseRecord) -> dict[str, Any]:
    body = asdict(record)
    body["kind"] = record.kind.value
    body["phase"] = record.phase.value
    body["outcome"] = record.outcome.value
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
        self._ddb = aws.client("dynamodb")
        self._poller = poller
        self.scope = scope
        self.table = table

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

    def write(self, record: ReleaseRecord) -> None:
        self._ddb.put_item(TableName=self.table, Item=record_to_item(self.scope, record))

    def history(self, limit: int = 50) -> list[ReleaseRecord]:
        """Newest first."""
        try:
            response = self._ddb.query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":pk": {"S": self.scope},
                    ":prefix": {"S": RECORD_PREFIX},
                },
                ScanIndexForward=False,
                Limit=limit,
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []
            raise
        return [item_to_record(item) for item in response["Items"]]
