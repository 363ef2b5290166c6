"""CloudWatch adapter: the state of the alarms a release is gated on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deployer.aws.session import AwsContext


class CloudWatch:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    @property
    def _cw(self) -> Any:
        return self._aws.client("cloudwatch")

    def alarm_states(self, names: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Alarm name -> (state, reason). An alarm that does not exist is absent."""
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(names), 100):
            # Without AlarmTypes, AWS lists metric alarms only: composite ones would be
            # reported missing.
            described = self._cw.describe_alarms(
                AlarmNames=list(names[start : start + 100]),
                AlarmTypes=["MetricAlarm", "CompositeAlarm"],
            )
            for alarm in described.get("MetricAlarms", []) + described.get("CompositeAlarms", []):
                found[alarm["AlarmName"]] = (alarm["StateValue"], alarm.get("StateReason", ""))
        return found
