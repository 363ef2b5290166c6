"""S3 adapter: the artifact bucket."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext, error_code


def tls_only_policy(bucket: str) -> dict[str, object]:
    arn = f"arn:aws:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


class BucketState(Enum):
    OURS = "ours"
    MISSING = "missing"
    ELSEWHERE = "held by another account"


class S3:
    """The artifact bucket's name is predictable (deployer-artifacts-<account>-<region>), so
    every call on it names the account that must own it (ExpectedBucketOwner): a bucket of
    that name made by someone else is refused (403), never written to or read from.
    """

    def __init__(self, aws: AwsContext, owner: Callable[[], str] = lambda: "") -> None:
        self._aws = aws
        self._region = aws.region
        self._owner = owner  # the account, once known

    @property
    def _s3(self) -> Any:
        return self._aws.client("s3")

    def _expected(self) -> dict[str, str]:
        owner = self._owner()
        return {"ExpectedBucketOwner": owner} if owner else {}

    def bucket_state(self, bucket: str) -> BucketState:
        """Ours, missing, or held by another account (the name is taken)."""
        try:
            self._s3.head_bucket(Bucket=bucket, **self._expected())
            return BucketState.OURS
        except ClientError as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                return BucketState.MISSING
            if code in ("403", "AccessDenied", "Forbidden"):
                return BucketState.ELSEWHERE
            raise

    def ensure_bucket(self, bucket: str, expire_days: int = 30) -> bool:
        """The artifact bucket; when made here (no deployer-iam.yaml made it, and the caller
        may): private, encrypted, TLS only, and artifacts expiring after `expire_days`.
        Returns whether it was made now.
        """
        if self.bucket_state(bucket) is not BucketState.MISSING:
            return False
        params: dict[str, object] = {"Bucket": bucket}
        if self._region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            self._s3.create_bucket(**params)
        except ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
        self._s3.put_public_access_block(
            Bucket=bucket,
            **self._expected(),
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        self._s3.put_bucket_encryption(
            Bucket=bucket,
            **self._expected(),
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        self._s3.put_bucket_policy(
            Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket)), **self._expected()
        )
        self._s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            **self._expected(),
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "deployer-artifacts-expire",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "Expiration": {"Days": expire_days},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    }
                ]
            },
        )
        return True

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=bucket, Key=key, **self._expected())
            return True
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def upload(self, path: Path, bucket: str, key: str, digest: str) -> None:
        extra = {"Metadata": {"sha256": digest}, **self._expected()}
        self._s3.upload_file(str(path), bucket, key, ExtraArgs=extra)

    def download(self, bucket: str, key: str, path: Path) -> None:
        """From any bucket (an artifact.source of yours): its owner is not ours to name."""
        self._s3.download_file(bucket, key, str(path))

    def presigned_get(self, bucket: str, key: str, seconds: int = 900) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds
            )
        )
