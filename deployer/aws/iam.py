"""IAM, read only: the policy simulator, for the permission preflight."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext


class Iam:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    def role_arn(self, principal_arn: str) -> str:
        """A role's full ARN, path included (a session ARN has no path: IAM Identity Center's
        roles live under /aws-reserved/...). Users, or a role we may not read, as given.
        """
        if ":role/" not in principal_arn:
            return principal_arn
        name = principal_arn.rsplit("/", 1)[-1]
        try:
            return str(self._aws.client("iam").get_role(RoleName=name)["Role"]["Arn"])
        except ClientError:
            return principal_arn

    def simulate(
        self,
        principal_arn: str,
        actions: Sequence[str],
        resource_arn: str,
        context: Mapping[str, Sequence[str]],
    ) -> list[dict[str, Any]]:
        """Each action's evaluation for `principal_arn`'s policies on one resource, with the
        context keys deployer's requests carry (its tags, the service role...).
        """
        entries = [
            {
                "ContextKeyName": key,
                "ContextKeyValues": list(values),
                "ContextKeyType": "stringList" if len(values) > 1 else "string",
            }
            for key, values in context.items()
        ]
        results: list[dict[str, Any]] = []
        pages = (
            self._aws.client("iam")
            .get_paginator("simulate_principal_policy")
            .paginate(
                PolicySourceArn=principal_arn,
                ActionNames=list(actions),
                ResourceArns=[resource_arn],
                ContextEntries=entries,
            )
        )
        for page in pages:
            results.extend(page.get("EvaluationResults", []))
        return results
