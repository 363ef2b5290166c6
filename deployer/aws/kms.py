"""KMS adapter, read only: which key a configured EBS key id (an alias, an id, an ARN) is,
and what its policy and grants allow.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext


class Kms:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    def customer_key_arn(self, key_id: str) -> str | None:
        """The key's ARN when it is customer-managed; None for an AWS-managed key (its policy
        already lets EC2 use it for the account) or one that cannot be read.
        """
        try:
            metadata = self._aws.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
        except ClientError:
            return key_id if ":key/" in key_id else None
        return None if metadata.get("KeyManager") == "AWS" else str(metadata["Arn"])

    def policy_and_grants(self, key_arn: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The key's default policy and its grants; None when the caller may not read them
        (kms:GetKeyPolicy, kms:ListGrants), so that no run is refused on a guess.
        """
        kms = self._aws.client("kms")
        try:
            policy = json.loads(kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"])
            grants: list[dict[str, Any]] = []
            for page in kms.get_paginator("list_grants").paginate(KeyId=key_arn):
                grants.extend(page.get("Grants", []))
        except ClientError:
            return None
        return policy, grants
