"""Service Quotas adapter: an account's applied quota, read before a run makes anything."""

from __future__ import annotations

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext, error_code


class ServiceQuotas:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    def applied(self, service_code: str, quota_code: str, default: float) -> float | None:
        """The applied value; `default` (AWS's documented one) when Service Quotas has no
        applied value for it (NoSuchResourceException: never changed); None when it cannot
        be asked (no permission), so that no run is refused on a guess.
        """
        try:
            answer = self._aws.client("service-quotas").get_service_quota(
                ServiceCode=service_code, QuotaCode=quota_code
            )
        except ClientError as exc:
            if error_code(exc) == "NoSuchResourceException":
                return default
            if error_code(exc) in ("AccessDeniedException", "AccessDenied"):
                return None
            raise
        return float(answer["Quota"]["Value"])
