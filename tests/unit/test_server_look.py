"""The Step Functions runner prepares the gate rule's input in JSONata
(deployer/core/server_look.jsonata), from GetMetricData's answer as the state machine gets
it. Across drawn scenarios (probes, unsettled and partial minutes, no blue, an idle blue,
latency from mostly-probe minutes), it must give the rule the input the CLI's Python
preparation gives, and so the same verdict: one rule, two runners, the same decisions.
"""

import json
import random
from datetime import UTC, datetime

import jsonata
import pytest

from deployer.core.gate_inputs import Probes, rule_input, settled, users_of
from deployer.core.metrics import MetricPolicy, MetricWindow, Period, with_requests
from deployer.release.gate_rule import evaluate, jsonata_file, rule_text
from tests.unit.gate_corpus import CORPUS

PERIOD_S = 60.0
DELAY_S = 120.0
POLICY = MetricPolicy(min_periods=3, max_error_increase=0.5, significance=0.01)
LOOK = jsonata.Jsonata(jsonata_file("server_look.jsonata"))
# The state machine applies the rule to the look's input as a path step, as embedded.
SERVER_RULE = jsonata.Jsonata(f"look.input.({rule_text()})")


def answer(fleets: list[list[Period]]) -> list[dict]:
    """GetMetricData's MetricDataResults for the fleets (0: green, 1: blue), timestamps as
    Step Functions' SDK integration gives them: ISO 8601 text.
    """
    results = []
    for n, minutes in enumerate(fleets):
        for field, value in (
            ("req", lambda p: p.requests),
            ("err", lambda p: p.errors - p.connection_errors),
            ("con", lambda p: p.connection_errors),
            ("lat", lambda p: p.latency),
        ):
            shown = [p for p in minutes if value(p) is not None and (field != "err" or value(p))]
            results.append(
                {
                    "Id": f"{field}{n}",
                    "Timestamps": [
                        datetime.fromtimestamp(p.start, tz=UTC).isoformat() for p in shown
                    ],
                    "Values": [value(p) for p in shown],
                    "StatusCode": "Complete",
                }
            )
    return results


def python_side(green, blue, probes, window, final, looks):
    done = settled(green, window.now, PERIOD_S, DELAY_S)
    mine = users_of([p for p in done if p.start >= window.green_since], probes)
    theirs = settled(blue, window.now, PERIOD_S, DELAY_S) if blue is not None else None
    idle = window.idle(theirs) or (theirs is None and not with_requests(mine))
    inputs = rule_input(mine, theirs, POLICY, looks, final, POLICY.min_minute_requests)
    return idle, inputs


def server_side(green, blue, probes, window, final, looks, policy):
    look = {
        "results": answer([green] + ([blue] if blue is not None else [])),
        "now": window.now * 1000,
        "green_since": window.green_since * 1000,
        "period": PERIOD_S * 1000,
        "delay": DELAY_S * 1000,
        "probes": {str(k): list(v) for k, v in probes.by_minute.items()},
        "has_blue": blue is not None,
        "final": final,
        "policy": policy,
        "min_minute_requests": POLICY.min_minute_requests,
        "max_latency": POLICY.max_latency_seconds,
    }
    prepared = LOOK.evaluate(look)
    return prepared, SERVER_RULE.evaluate({"look": prepared})


def draw(rng: random.Random, start: float, minutes: int, rate: float, errors: float):
    found = []
    for i in range(minutes):
        requests = float(rng.choice([0, rng.randint(1, 5), rng.randint(20, 400)]) if rate else 0)
        failed = float(sum(rng.random() < errors for _ in range(int(requests))))
        connection = float(min(failed, rng.choice([0, 0, 1])))
        latency = rng.choice([None, round(rng.uniform(0.01, 0.4), 3)]) if requests else None
        found.append(Period(start + PERIOD_S * i, requests, failed, latency, connection))
    return found


@pytest.mark.parametrize("seed", range(60))
def test_the_server_look_gives_the_rule_what_the_cli_gives_it(seed):
    rng = random.Random(seed)
    base = 1_800_000_000.0 - (1_800_000_000.0 % PERIOD_S)
    started = base + 600 + rng.uniform(0, 59)
    now = started + rng.uniform(30, 900)
    window = MetricWindow.for_step(started, now, PERIOD_S, 600.0)
    has_blue = seed % 5 != 0
    idle_blue = seed % 7 == 0
    blue = draw(rng, base, 25, 0 if idle_blue else 1, 0.001) if has_blue else None
    green = draw(rng, window.green_since, 16, 1, rng.choice([0.0, 0.02, 0.3]))
    probes = Probes(PERIOD_S)
    for _ in range(rng.randint(0, 40)):
        probes.record(rng.uniform(window.green_since - 60, now), rng.choice([200, 200, 503, 0]))
    final, looks = rng.random() < 0.3, rng.randint(1, 9)

    idle, expected = python_side(green, blue, probes, window, final, looks)
    prepared, verdict = server_side(green, blue, probes, window, final, looks, expected["policy"])

    assert prepared["idle"] == idle
    assert prepared["input"]["green"] == expected["green"]
    assert prepared["input"]["blue"] == expected["blue"]
    assert prepared["input"]["pairs"] == expected["pairs"]
    assert verdict == evaluate(expected)


def test_the_rule_as_embedded_answers_as_the_cli_evaluates_it():
    """`look.input.(rule)` is how the state machine applies the text: same verdicts."""
    for case in json.loads(CORPUS.read_text())[::5]:
        assert SERVER_RULE.evaluate({"look": {"input": case["input"]}}) == evaluate(case["input"])
