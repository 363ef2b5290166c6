"""CloudWatch Logs' FilterLogEvents as AWS answers it (in every profile): moto ignores
`logStreamNamePrefix` and answers every stream of the group. AWS searches only the streams
whose names start with it (and refuses it beside `logStreamNames`), which is how
`deployer logs VERSION` reads one version's streams.
"""

from __future__ import annotations

import json
from typing import Any

from moto.logs.exceptions import InvalidParameterException
from moto.logs.responses import LogsResponse

_ORIGINAL = LogsResponse.filter_log_events


def filter_log_events(self: LogsResponse) -> Any:
    prefix = self._get_param("logStreamNamePrefix")
    if not prefix:
        return _ORIGINAL(self)
    if self._get_param("logStreamNames"):
        raise InvalidParameterException(
            "Cannot specify both logStreamNames and logStreamNamePrefix"
        )
    group = self._get_param("logGroupName")
    backend = self.logs_backend
    if group not in backend.groups:
        return _ORIGINAL(self)  # moto's own ResourceNotFoundException
    names = [name for name in backend.groups[group].streams if name.startswith(prefix)]
    if not names:
        return json.dumps({"events": [], "searchedLogStreams": []})
    events, next_token, searched = backend.filter_log_events(
        group,
        names,
        self._get_param("startTime"),
        self._get_param("endTime"),
        self._get_param("limit"),
        self._get_param("nextToken"),
        self._get_param("filterPattern"),
        True,
    )
    answer: dict[str, Any] = {"events": events, "searchedLogStreams": searched}
    if next_token:
        answer["nextToken"] = next_token
    return json.dumps(answer)


def check_internals() -> list[str]:
    """What moves in moto that this patch relies on (empty when nothing did)."""
    import inspect

    from moto.logs.models import LogsBackend

    params = list(inspect.signature(LogsBackend.filter_log_events).parameters)
    wanted = [
        "self",
        "log_group_name",
        "log_stream_names",
        "start_time",
        "end_time",
        "limit",
        "next_token",
        "filter_pattern",
        "interleaved",
    ]
    return [] if params == wanted else [f"LogsBackend.filter_log_events{params}"]


def apply() -> None:
    LogsResponse.filter_log_events = filter_log_events  # type: ignore[method-assign]


def restore() -> None:
    LogsResponse.filter_log_events = _ORIGINAL  # type: ignore[method-assign]
