"""IAM, read only: the policy simulator, for the permission preflight."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deployer.aws.session import AwsContext


class Iam:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

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
