"""The artifact bucket's name is predictable: every call names the account that must own it,
and a bucket of that name held by someone else is never used (S3's answer, pinned on its
documented shape: the sandbox has one account, so no one else can hold a name there).
"""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from deployer.aws.s3 import S3, BucketState
from deployer.aws.session import AwsContext

ACCOUNT = "123456789012"
BUCKET = f"deployer-artifacts-{ACCOUNT}-eu-west-1"


def test_a_bucket_of_our_name_held_by_another_account_is_refused_not_used():
    session = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1"
    )
    aws = AwsContext(session=session)
    s3 = S3(aws, owner=lambda: ACCOUNT)
    expected = {"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT}
    with Stubber(aws.client("s3")) as stub:
        stub.add_client_error("head_bucket", "403", "Forbidden", 403, expected_params=expected)
        stub.add_client_error("head_bucket", "404", "Not Found", 404, expected_params=expected)
        stub.add_response("head_bucket", {}, expected)
        stub.add_response("head_bucket", {}, expected)  # ensure_bucket: ours, nothing made
        assert s3.bucket_state(BUCKET) is BucketState.ELSEWHERE
        assert s3.bucket_state(BUCKET) is BucketState.MISSING
        assert s3.bucket_state(BUCKET) is BucketState.OURS
        assert s3.ensure_bucket(BUCKET) is False
        stub.assert_no_pending_responses()
