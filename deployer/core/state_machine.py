"""The traffic part of a release as an AWS Step Functions state machine, generated from the
release's table (core.steps). Pure: it returns the definition (JSONata mode, SDK integrations
only), never calls AWS.

    Begin -> row 1 .. row n (the traffic steps, then the watch) -> Finish
    each row: journal it -> move traffic -> (hold -> read alarms, targets, metrics -> judge)*
    a failure: restore traffic -> journal why -> release the lock -> Rolled back

The gates are judged as the CLI judges them: the metric verdict is the gate rule's text
(gate_rule.jsonata) applied to the input server_look.jsonata prepares from GetMetricData,
both embedded as they ship; alarms and target health may fail `max_failures` times in a
row's hold before the row fails (core.gates.judge). A row passes once it held its minimum
and the rule has a verdict (or is idle), and at its deadline the rule's `action` decides.

The execution writes the journal as the CLI does, one item per release: each write is
conditional on the release still being in progress, so an `abort` that took the release
over (it stops the execution first) can never be overwritten by a late write. The lock the
CLI handed over is released by the execution as it ends.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deployer.core.asl import (
    ALARMS_SDK,
    FENCED,
    FENCED_SDK,
    METRICS_SDK,
    PAUSE_SDK,
    TARGET_HEALTH_SDK,
    journal,
    release_lock,
    retry,
    set_weights,
    x,
)

EVENTS_PER_LOOK = 25  # history events of one look: wait, three reads, judge, report, decide
HISTORY_LIMIT = 25_000  # Step Functions' events per execution


@dataclass(frozen=True)
class Row:
    """One traffic row of the table: a step (weights) or the watch (all on green)."""

    name: str
    phase: str  # "step", "pause" or "watch"
    index: int  # a pause's: the step whose traffic it holds
    green_weight: int
    blue_weight: int
    wait_s: int = 0  # a pause's timeout

    @property
    def state(self) -> str:
        return f"Row {self.name}"


def _judge(rule: str, look: str) -> str:
    """One look's verdict: what failed (counted per gate, as core.gates.judge counts), and
    whether the row holds, goes on, or fails. Its numbers go to the history (Report).
    """
    return x(
        f"""(
        $now := $millis();
        $held := $now - $started;
        $final := $held >= $timing.deadline;
        $prev := $judged.failures;
        $firing := $alarms[StateValue = "ALARM"].AlarmName;
        $found := $alarms.AlarmName;
        $missing := $filter($in.alarms, function($n) {{ $not($n in $found) }});
        $healthy := $count($targets[TargetHealth.State = "healthy"]);
        $needed := $row.phase = "watch" ? $in.green.expected :
            $ceil($in.green.expected * $row.green_weight / 100);
        $look := $in.metrics.enabled ? {{
            "results": $metrics, "now": $now,
            "green_since": $floor($started / $in.clock.period) * $in.clock.period,
            "period": $in.clock.period, "delay": $in.clock.delay, "probes": $in.probes,
            "has_blue": $in.blue != null, "final": $final, "policy": $timing.policy,
            "min_minute_requests": $in.metrics.min_minute_requests,
            "max_latency": $in.metrics.max_latency
        }}.({look}) : null;
        $rule := ($look and $not($look.idle)) ? $look.input.({rule}) : null;
        $failures := {{
            "alarm": $prev.alarm + ($count($firing) + $count($missing) > 0 ? 1 : 0),
            "targets": $prev.targets + ($healthy < $needed ? 1 : 0),
            "metric": $prev.metric + ($rule.verdict = "FAIL" ? 1 : 0)
        }};
        $most := $in.max_failures;
        $waiting := $rule.verdict = "CONTINUE";
        $g := $look.input.green;
        $b := $look.input.blue;
        $counts := "green " & $g.errors & "/" & $g.requests & " users' requests failed vs blue "
            & $b.errors & "/" & $b.requests;
        $metricGate := $rule.latency.verdict = "FAIL" and $rule.errors.verdict != "FAIL" ?
            "metric latency" : "metric error rate";
        $metricWords := $rule.errors.verdict = "FAIL" ? $counts :
            $rule.latency.verdict = "FAIL" ? $rule.latency.slower & " of "
              & $rule.latency.minutes & " minutes slower than blue by the margin" :
            "inconclusive at the hold's deadline (" & $counts & ")";
        $firstFiring := $alarms[StateValue = "ALARM"][0];
        $failed := $failures.targets > $most ? {{
              "gate": "target-health green",
              "detail": $healthy & " of " & $needed & " targets healthy"
            }} :
            $failures.alarm > $most ? ($count($firing) > 0 ? {{
              "gate": "alarm " & $firstFiring.AlarmName,
              "detail": "ALARM" & ($firstFiring.StateReason ? ": " & $firstFiring.StateReason : "")
            }} : {{"gate": "alarm " & $missing[0], "detail": "MISSING: no such alarm"}}) :
            $failures.metric > $most or ($final and $waiting and $rule.action = "rollback") ? {{
              "gate": $metricGate, "detail": $metricWords
            }} : null;
        {{
            "row": $row.name, "action": $failed ? "fail" :
                ($held >= $timing.minimum and ($not($waiting) or $final)) ? "next" : "hold",
            "reason": $failed ? "gate '" & $failed.gate & "' failed at step '" & $row.name
                & "': " & $failed.detail : "",
            "gate": $failed.gate, "detail": $failed.detail,
            "failures": $failures, "held_ms": $held, "healthy": $healthy, "needed": $needed,
            "alarms_firing": [$firing], "verdict": $rule ? $rule.verdict : null,
            "idle": $look.idle = true, "inconclusive": $rule.inconclusive = true,
            "green": $look.input.green, "blue": $look.input.blue,
            "checks_excluded": $look.excluded
        }}
        )"""
    )


def _row_states(rows: Sequence[Row]) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for position, row in enumerate(rows):
        following = rows[position + 1].state if position + 1 < len(rows) else "Finish"
        if row.phase == "pause":
            states.update(_pause_states(row, following))
            continue
        literal = json.dumps(
            {
                "name": row.name,
                "phase": row.phase,
                "index": row.index,
                "green_weight": row.green_weight,
                "blue_weight": row.blue_weight,
                "position": position,
                "next": following,
            }
        )
        weights = (
            f"$merge([{{$in.green.target_group: {row.green_weight}}}, $in.blue ? "
            f"{{$in.blue.target_group: {row.blue_weight}}} : {{}}])"
        )
        states[row.state] = {
            "Type": "Pass",
            "Assign": {
                "row": x(literal),
                "timing": x(f"$in.timings[{position}]"),
                "started": x("$millis()"),
                "judged": {"failures": {"alarm": 0, "targets": 0, "metric": 0}},
                "weights": x(weights),
                "record": x(
                    f"""$merge([$record, {{"phase": "{row.phase}", "step": {row.index},
                    "phase_done": false, "pause_token": "", "weights": {weights} }}])"""
                ),
            },
            "Next": "Journal the row",
        }
    return states


TOKEN = '{"pause_token": $states.context.Task.Token}'


def _pause_states(row: Row, following: str) -> dict[str, Any]:
    """Journal the pause with the task token in it, and wait on that token: `deployer
    promote` hands it back (the next row), `deployer abort` stops the execution, and the
    timeout rolls the release back.
    """
    waiting, late = f"Wait for promote after step {row.index + 1}", f"Not promoted: {row.name}"
    words = json.dumps(
        {
            "row": row.name,
            "gate": "pause",
            "detail": f"not promoted within {row.wait_s}s",
            "reason": f"gate 'pause' failed at step '{row.name}': not promoted within "
            f"{row.wait_s}s",
        }
    )
    return {
        row.state: {
            "Type": "Pass",
            "Assign": {
                "record": x(
                    f"""$merge([$record, {{"phase": "pause", "step": {row.index},
                    "phase_done": false}}])"""
                ),
            },
            "Next": waiting,
        },
        waiting: {
            "Type": "Task",
            "Resource": PAUSE_SDK,
            "Arguments": {
                "TableName": x("$in.journal.table"),
                "Key": x("$in.journal.key"),
                "UpdateExpression": "SET #record = :record",
                "ConditionExpression": "#outcome = :running",
                "ExpressionAttributeNames": {"#record": "record", "#outcome": "outcome"},
                "ExpressionAttributeValues": {
                    ":record": {"S": x(f"$string($merge([$record, {TOKEN}]))")},
                    ":running": {"S": "in_progress"},
                },
            },
            "TimeoutSeconds": row.wait_s,
            "Catch": [
                {"ErrorEquals": [FENCED_SDK, FENCED], "Next": "Fenced"},
                {"ErrorEquals": ["States.Timeout"], "Next": late},
                {"ErrorEquals": ["States.ALL"], "Next": "Restore traffic"},
            ],
            "Next": following,
        },
        late: {"Type": "Pass", "Assign": {"judged": x(words)}, "Next": "Restore traffic"},
    }


def definition(rows: Sequence[Row], rule: str, look: str, table_digest: str) -> dict[str, Any]:
    """The state machine for a release table's traffic rows (steps, then the watch)."""
    if not rows:
        raise ValueError("a release table without traffic rows has nothing to run server-side")
    stamp = "$now('[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01]Z')"
    choose_next = [
        {"Condition": x(f'$row.next = "{row.state}"'), "Next": row.state} for row in rows[1:]
    ]
    states: dict[str, Any] = {
        "Begin": {
            "Type": "Pass",
            "Assign": {"in": x("$states.input"), "record": x("$states.input.release")},
            "Next": rows[0].state,
        },
        **_row_states(rows),
        "Journal the row": journal("Move traffic", "Restore traffic"),
        "Move traffic": set_weights("$weights", "Hold", "Restore traffic"),
        "Hold": {
            "Type": "Wait",
            "Seconds": x("$in.clock.interval_s"),
            "Assign": {"alarms": []},
            "Next": "Any alarms",
        },
        "Any alarms": {
            "Type": "Choice",
            "Choices": [{"Condition": x("$count($in.alarms) > 0"), "Next": "Read alarms"}],
            "Default": "Read targets",
        },
        "Read alarms": {
            "Type": "Task",
            "Resource": ALARMS_SDK,
            "Arguments": {"AlarmNames": x("$in.alarms"), "AlarmTypes": ["MetricAlarm"]},
            "Assign": {"alarms": x("[$states.result.MetricAlarms]")},
            "Retry": retry(),
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Restore traffic"}],
            "Next": "Read targets",
        },
        "Read targets": {
            "Type": "Task",
            "Resource": TARGET_HEALTH_SDK,
            "Arguments": {"TargetGroupArn": x("$in.green.target_group")},
            "Assign": {"targets": x("[$states.result.TargetHealthDescriptions]")},
            "Retry": retry(),
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Restore traffic"}],
            "Next": "Read metrics",
        },
        "Read metrics": {
            "Type": "Task",
            "Resource": METRICS_SDK,
            "Arguments": {
                "MetricDataQueries": x("$in.metrics.queries"),
                "StartTime": x(
                    "$fromMillis($floor($started / $in.clock.period) * $in.clock.period"
                    " - $in.clock.baseline)"
                ),
                "EndTime": x("$fromMillis($millis())"),
                "ScanBy": "TimestampAscending",
            },
            "Assign": {"metrics": x("[$states.result.MetricDataResults]")},
            "Retry": retry(),
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Restore traffic"}],
            "Next": "Judge",
        },
        "Judge": {"Type": "Pass", "Assign": {"judged": "__JUDGE__"}, "Next": "Report"},
        "Report": {"Type": "Pass", "Output": x("$judged"), "Next": "Decide"},
        "Decide": {
            "Type": "Choice",
            "Choices": [
                {"Condition": x('$judged.action = "fail"'), "Next": "Restore traffic"},
                {"Condition": x('$judged.action = "next"'), "Next": "Next row"},
            ],
            "Default": "Hold",
        },
        "Next row": {"Type": "Choice", "Choices": choose_next, "Default": "Finish"}
        if choose_next
        else {"Type": "Pass", "Next": "Finish"},
        "Finish": {
            "Type": "Pass",
            "Assign": {
                "weights": x(
                    "$merge([{$in.green.target_group: 100}, $in.blue and $in.keep_blue ? "
                    "{$in.blue.target_group: 0} : {}])"
                ),
                "record": x(
                    f"""$merge([$record, {{"phase": "done", "phase_done": true, "step": -1,
                    "pause_token": "",
                    "outcome": "succeeded", "finished_at": {stamp},
                    "weights": $merge([{{$in.green.target_group: 100}},
                        $in.blue and $in.keep_blue ? {{$in.blue.target_group: 0}} : {{}}]) }}])"""
                ),
            },
            "Next": "Final traffic",
        },
        "Final traffic": set_weights("$weights", "Journal the success", "Restore traffic"),
        "Journal the success": journal("Release the lock", "Needs a human"),
        "Release the lock": release_lock("Succeeded"),
        "Succeeded": {"Type": "Succeed", "Output": x("$record")},
        "Restore traffic": {
            "Type": "Pass",
            "Assign": {
                "weights": x("$in.prior_weights"),
                "record": x(
                    f"""$merge([$record, {{"phase": "rollback", "phase_done": false,
                    "pause_token": "",
                    "outcome": "failed", "finished_at": {stamp},
                    "reason": $judged.reason ? $judged.reason :
                        "the state machine could not read or act: " &
                        ($states.input.Error ? $states.input.Error : "unknown error") }}])"""
                ),
            },
            "Next": "Traffic back",
        },
        "Traffic back": set_weights("$weights", "Journal the failure", "Needs a human"),
        "Journal the failure": journal("Release the lock after a failure", "Needs a human"),
        "Release the lock after a failure": release_lock("Rolled back"),
        "Rolled back": {"Type": "Fail", "Error": "GateFailed", "Cause": x("$record.reason")},
        "Fenced": {
            "Type": "Fail",
            "Error": "Fenced",
            "Cause": "the release is no longer in progress in the journal (aborted or taken "
            "over); this execution stopped without acting further",
        },
        "Needs a human": {
            "Type": "Fail",
            "Error": "NeedsHuman",
            "Cause": "moving traffic back or journalling it failed after retries: run "
            "`deployer status`, then `deployer abort`",
        },
    }
    text = json.dumps(
        {
            "Comment": f"deployer release traffic, table {table_digest}",
            "QueryLanguage": "JSONata",
            "StartAt": "Begin",
            "States": states,
        }
    )
    judge = json.dumps(_judge(rule, look))
    return dict(json.loads(text.replace('"__JUDGE__"', judge)))


def worst_case_events(deadlines_s: Sequence[float], interval_s: float) -> int:
    """The most history events an execution can write: every row held to its deadline."""
    looks = sum(math.ceil(d / max(interval_s, 1.0)) + 1 for d in deadlines_s)
    return looks * EVENTS_PER_LOOK + 50 * len(deadlines_s) + 100
