"""What deployer leaves behind to watch a release: the log group, and who is told of it
(`notify:`, Apprise URLs). The check here is of the entries' form alone; whether Apprise knows
a URL's scheme is asked where notifications are set up (deployer.output.notify), so loading
the config never imports Apprise.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from deployer.config.base import Strict

# What CloudWatch Logs accepts as a retention (PutRetentionPolicy, AWS::Logs::LogGroup).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    *(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731),
    *(1096, 1827, 2192, 2557, 2922, 3288, 3653),
)


class Logs(Strict):
    """The app/environment's log group (made by the service stack), which the instances'
    CloudWatch agent ships the app's output, the configure unit's log and cloud-init's to.
    """

    retention_days: int = Field(
        default=30,
        description="How long CloudWatch Logs keeps the lines: one of "
        + ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        + ".",
    )
    kms_key_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$",
        description="A KMS key (its ARN) that encrypts the log group; its key policy must let "
        "logs.<region>.amazonaws.com use it. Default: CloudWatch Logs' own encryption.",
    )

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{days} is not a retention CloudWatch Logs offers: "
                + ", ".join(str(d) for d in LOG_RETENTION_DAYS)
            )
        return days


NOTIFY_MAX = 20


def notify_entry_problem(entry: str) -> str:
    """Why a `notify:` entry cannot be an Apprise URL on its form alone, or ''.

    An `env:NAME` entry is read from the environment when a notification is sent.
    """
    if entry.startswith("env:"):
        return "" if entry[4:].strip() else "env: names no variable"
    if "://" not in entry:
        return "not a URL (Apprise URLs look like json://host/path or slack://...)"
    return ""
