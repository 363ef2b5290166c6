"""The state machine that runs a release's traffic part in AWS, generated from the release's
table: its shape, what it may call, that it carries the CLI's own gate rule, and what it
decides at each look (its Judge expression, evaluated here by the JSONata engine the sandbox
gives Step Functions).
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonata
import pytest
from cfnlint.api import ManualArgs, lint
from moto.stepfunctions.parser.asl.jsonata.jsonata import extract_jsonata_variable_references

from deployer.core.asl import RESOURCES
from deployer.core.gate_inputs import rule_policy
from deployer.core.metrics import MetricPolicy
from deployer.core.state_machine import definition, worst_case_events
from deployer.core.steps import release_table
from deployer.release.gate_rule import rule_text
from deployer.release.server_side import history_problem, look_text, rows_of, runner_template

REPO = Path(__file__).resolve().parents[2]
TABLE = release_table("canary", [10, 50, 100], 30, 120, has_blue=True)
MACHINE = definition(rows_of(TABLE), rule_text(), look_text(), "digest")
STATES = MACHINE["States"]


def expressions(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from expressions(value)
    elif isinstance(node, str) and node.startswith("{%"):
        yield node.removeprefix("{%").removesuffix("%}").strip()


def test_a_row_per_traffic_step_and_the_watch_in_the_tables_order():
    rows = [name for name in STATES if name.startswith("Row ")]
    assert rows == [
        "Row step 1: canary 10/100",
        "Row step 2: canary 50/100",
        "Row step 3: all traffic",
        "Row watch for 120s",
    ]
    assert STATES["Begin"]["Next"] == rows[0]
    chain = [json.loads(STATES[r]["Assign"]["row"][3:-3])["next"] for r in rows]
    assert chain == [*rows[1:], "Finish"]
    assert [c["Next"] for c in STATES["Next row"]["Choices"]] == rows[1:]


def test_it_calls_aws_only_through_the_sdk_integrations_it_is_allowed():
    tasks = [s["Resource"] for s in STATES.values() if s["Type"] == "Task"]
    assert tasks and set(tasks) <= set(RESOURCES)
    assert not any("lambda" in t for t in tasks)
    assert MACHINE["QueryLanguage"] == "JSONata"


def test_the_gate_rule_is_embedded_as_the_cli_evaluates_it():
    judge = STATES["Judge"]["Assign"]["judged"]
    assert " ".join(rule_text().split()) in judge
    assert " ".join(look_text().split()) in judge


def test_no_expression_refers_to_dollar_or_double_dollar_which_step_functions_refuses():
    found = list(expressions(MACHINE))
    assert len(found) > 20
    for text in found:
        extract_jsonata_variable_references(text)  # raises on a bare $ or $$


def test_every_write_to_the_journal_is_fenced_on_the_release_still_in_progress():
    writes = [s for s in STATES.values() if s.get("Resource", "").endswith("updateItem")]
    journal = [w for w in writes if "#record" in w["Arguments"]["UpdateExpression"]]
    assert len(journal) == 3  # each row, the success, the failure
    for write in journal:
        assert write["Arguments"]["ConditionExpression"] == "#outcome = :running"
        assert write["Catch"][0] == {
            "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
            "Next": "Fenced",
        }


def test_a_failure_to_read_a_gate_restores_traffic_and_a_failure_to_restore_needs_a_human():
    for name in ("Read alarms", "Read targets", "Read metrics", "Move traffic"):
        assert STATES[name]["Catch"][-1]["Next"] == "Restore traffic"
        assert STATES[name]["Retry"][-1]["JitterStrategy"] == "FULL"
    assert STATES["Traffic back"]["Catch"][-1]["Next"] == "Needs a human"


def test_the_rendered_runner_stack_is_clean_for_cfn_lint():
    body = runner_template(REPO / "cloudformation", TABLE, "digest")
    found = lint(body, config=ManualArgs(regions=["us-east-1"]))
    errors = [m for m in found if m.rule.id[0] == "E"]
    assert errors == []
    assert len(body.encode()) < 51_200  # CloudFormation's limit for a template in the call


def test_a_release_held_to_its_deadlines_fits_in_one_executions_history():
    deadlines = [30 + 420] * 3 + [120 + 420]  # the default canary, each to its evidence
    assert worst_case_events(deadlines, 60) < 25_000 * 0.8
    assert worst_case_events([6 * 3600] * 4, 60) > 25_000  # hours-long holds do not


def test_a_pause_waits_on_a_task_token_written_into_the_journal_until_its_timeout():
    table = release_table("canary", [10, 100], 30, 0, True, pauses_after={0}, pause_s=900)
    states = definition(rows_of(table), rule_text(), look_text(), "digest")["States"]
    first = json.loads(states["Row step 1: canary 10/100"]["Assign"]["row"][3:-3])
    assert first["next"] == "Row pause after step 1"
    waiting = states["Wait for promote after step 1"]
    assert waiting["Resource"].endswith(":dynamodb:updateItem.waitForTaskToken")
    assert (
        "$states.context.Task.Token"
        in waiting["Arguments"]["ExpressionAttributeValues"][":record"]["S"]
    )
    assert waiting["TimeoutSeconds"] == 900 and waiting["Next"] == "Row step 2: all traffic"
    timeout = next(c for c in waiting["Catch"] if c["ErrorEquals"] == ["States.Timeout"])
    assert states[timeout["Next"]]["Next"] == "Restore traffic"
    for text in expressions(states):
        extract_jsonata_variable_references(text)


def test_a_strategy_that_could_outlive_an_executions_history_is_refused_before_any_change():
    from deployer.config.model import DeployConfig

    def spec(strategy: dict) -> DeployConfig:
        return DeployConfig.model_validate(
            {"app": "hello", "artifact": {"source": "app"}, "executor": "stepfunctions",
             "strategy": strategy}
        )  # fmt: skip

    canary = {"kind": "canary", "steps": [10, 50, 100], "bake_seconds": 600}
    assert history_problem(spec(canary), 60.0, 1.0) == ""
    long = {**canary, "bake_seconds": 6 * 3600, "watch_seconds": 24 * 3600}
    problem = history_problem(spec(long), 60.0, 1.0)
    assert "history events" in problem and "executor: local" in problem


# ---- the Judge expression: one look's decision --------------------------------------------

POLICY = rule_policy(MetricPolicy(min_periods=3, max_error_increase=0.5, significance=0.01), 7)
JUDGE = STATES["Judge"]["Assign"]["judged"][3:-3]


def look(
    held_s=40,
    alarms=(("hello-5xx", "OK"),),
    healthy=2,
    green=(0, 0),
    blue=(400, 0),
    minimum_s=30,
    deadline_s=450,
    on_inconclusive="proceed",
    failures=None,
    max_failures=0,
    names=("hello-5xx",),
):
    now = 1_800_000_000_000
    period, start = 60_000, now - held_s * 1000

    def series(n, requests, errors):
        # every minute from ten before the step to the last settled one
        first, last = (start // period) * period - 600_000, now - period - 120_000
        minutes = [
            datetime.fromtimestamp(m / 1000, tz=UTC).isoformat()
            for m in range(first, last + 1, period)
            if requests and (n == 1 or m >= (start // period) * period)
        ]
        return [
            {"Id": f"req{n}", "Timestamps": minutes, "Values": [requests] * len(minutes)},
            {"Id": f"err{n}", "Timestamps": minutes, "Values": [errors] * len(minutes)},
        ]

    variables = {
        "in": {
            "alarms": list(names),
            "green": {"expected": 2},
            "blue": {"target_group": "blue"},
            "max_failures": max_failures,
            "probes": {},
            "clock": {"period": period, "delay": 120_000, "baseline": 600_000},
            "metrics": {"enabled": True, "min_minute_requests": 2, "max_latency": 2.0},
        },
        "row": {"name": "step 1: canary 10/100", "phase": "step", "green_weight": 10},
        "timing": {
            "minimum": minimum_s * 1000,
            "deadline": deadline_s * 1000,
            "policy": {**POLICY, "on_inconclusive": on_inconclusive},
        },
        "started": start,
        "judged": {"failures": failures or {"alarm": 0, "targets": 0, "metric": 0}},
        "alarms": [{"AlarmName": n, "StateValue": s} for n, s in alarms],
        "targets": [{"TargetHealth": {"State": "healthy"}}] * healthy,
        "metrics": series(0, *green) + series(1, *blue),
    }
    declared = "".join(f"${k} := {json.dumps(v)};" for k, v in variables.items())
    expression = jsonata.Jsonata(f"({declared} {JUDGE.replace('$millis()', str(now))})")
    return expression.evaluate(None)


def test_a_look_with_an_alarm_in_alarm_fails_the_row_naming_it():
    judged = look(alarms=[("hello-5xx", "ALARM")])
    assert judged["action"] == "fail" and judged["gate"] == "alarm hello-5xx"
    # worded as the CLI words a gate failure (GateFailed), so both runners' journals agree
    assert (
        judged["reason"] == "gate 'alarm hello-5xx' failed at step 'step 1: canary 10/100': ALARM"
    )


def test_an_alarm_that_does_not_exist_fails_closed():
    judged = look(alarms=[], names=["hello-5xx"])
    assert judged["action"] == "fail" and "MISSING" in judged["reason"]


def test_a_failure_within_max_failures_holds_and_is_counted():
    judged = look(alarms=[("hello-5xx", "ALARM")], max_failures=1)
    assert judged["action"] == "hold" and judged["failures"]["alarm"] == 1


def test_fewer_healthy_targets_than_the_step_needs_fail_it():
    judged = look(healthy=0)
    assert judged["action"] == "fail" and judged["gate"] == "target-health green"


def test_a_metric_failure_fails_the_row_with_users_counts():
    judged = look(held_s=400, green=(20, 10))
    assert judged["action"] == "fail" and judged["verdict"] == "FAIL"
    assert judged["gate"] == "metric error rate"
    assert "users' requests failed vs blue" in judged["reason"]


@pytest.mark.parametrize(
    ("held_s", "deadline_s", "policy", "action"),
    [
        (10, 450, "proceed", "hold"),  # under its minimum
        (40, 450, "proceed", "hold"),  # the rule still waits for evidence
        (460, 450, "proceed", "next"),  # inconclusive at the deadline: the policy proceeds
        (460, 450, "rollback", "fail"),  # ... or rolls back, said so
    ],
)
def test_a_row_holds_until_its_minimum_and_its_evidence(held_s, deadline_s, policy, action):
    judged = look(held_s=held_s, deadline_s=deadline_s, on_inconclusive=policy, green=(3, 0))
    assert judged["action"] == action
    if action == "fail":
        assert "inconclusive" in judged["reason"]
