"""KMS adapter, read only: which key a configured EBS key id (an alias, an id, an ARN) is."""

from __future__ import annotations

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
