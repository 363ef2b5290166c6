"""The metric gate rule's golden corpus: scenarios (the rule's inputs) with the verdicts a
reference written independently with scipy gives them. `python -m tests.unit.gate_corpus`
writes tests/unit/gate_corpus.json; the tests check the rule against the file, and the file
against this reference.

The reference follows the statistics, not the rule's arithmetic: scipy's Fisher exact test
and binomial tail, the normal distribution's quantile, numpy-free square roots. Scenarios
whose deciding number lies within 1e-9 (relative) of its threshold are left out: there the
last bit of a float decides, and no corpus should pin that.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from deployer.core.gate_inputs import rule_input
from deployer.core.metrics import MetricPolicy, Period

CORPUS = Path(__file__).with_name("gate_corpus.json")
EDGE = 1e-9


class Borderline(Exception):
    """The scenario sits on a threshold: not for the corpus."""


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= EDGE * max(abs(a), abs(b), 1e-300)


def reference(inputs: dict[str, Any]) -> dict[str, str]:
    """Each part's verdict and the whole, by scipy."""
    from scipy.stats import binom, binomtest, fisher_exact, norm

    policy = inputs["policy"]
    alpha, delta, limit = policy["alpha"], policy["delta"], policy["limit"]
    z = norm.isf(alpha)
    green, blue = inputs["green"], inputs["blue"]
    n1, x1 = int(green["requests"]), int(green["errors"])
    minutes_ok = green["minutes"] >= policy["min_minutes"]
    with_blue = blue is not None and blue["requests"] > 0
    if n1 <= 0:
        errors = "CONTINUE"
    elif with_blue:
        n2, x2 = int(blue["requests"]), int(blue["errors"])
        big_n, big_x = n1 + n2, x1 + x2
        worse = x1 / n1 - x2 / n2 > delta
        if big_x == 0:
            significant = False
        elif n1 * big_x / big_n >= 5:
            d = x1 * n2 - x2 * n1 - big_n / 2
            if d <= 0:
                significant = False
            else:
                z_cc = d * math.sqrt(big_n / (n1 * n2 * big_x * (big_n - big_x)))
                if _close(z_cc, z):
                    raise Borderline
                significant = z_cc > z
        else:
            p = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="greater")[1]
            if _close(p, alpha):
                raise Borderline
            significant = p <= alpha
        g, b = (x1 + 1) / (n1 + 2), (x2 + 1) / (n2 + 2)
        bound = g - b + z * math.sqrt(g * (1 - g) / (n1 + 2) + b * (1 - b) / (n2 + 2))
        if _close(bound, delta):
            raise Borderline
        if significant and worse:
            errors = "FAIL"
        elif bound < delta and minutes_ok:
            errors = "PASS"
        else:
            errors = "CONTINUE"
    else:
        if n1 * limit >= 5:
            score = (x1 - n1 * limit - 0.5) / math.sqrt(n1 * limit * (1 - limit))
            if _close(score, z):
                raise Borderline
            significant = score > z
        else:
            p = binomtest(x1, n1, limit, alternative="greater").pvalue
            if _close(p, alpha):
                raise Borderline
            significant = p <= alpha and x1 > n1 * limit
        z2 = z * z
        center = (x1 + z2 / 2) / (n1 + z2)
        bound = center + z * math.sqrt(center * (1 - center) / (n1 + z2))
        if _close(bound, limit):
            raise Borderline
        if significant:
            errors = "FAIL"
        elif bound < limit and minutes_ok:
            errors = "PASS"
        else:
            errors = "CONTINUE"
    pairs = inputs["pairs"]
    if with_blue:
        slower = sum(
            1
            for m in pairs
            if m["green"] > m["blue"] * policy["ratio"] and m["green"] - m["blue"] > policy["floor"]
        )
    else:
        slower = sum(1 for m in pairs if m["green"] > m["blue"])
    n = len(pairs)
    p_sign = binom.sf(slower - 1, n, 0.5) if n else 1.0
    if n and _close(p_sign, alpha):
        raise Borderline
    if n and slower > 0 and p_sign <= alpha:
        latency = "FAIL"
    elif n >= policy["min_minutes"] and 2 * slower < n:
        latency = "PASS"
    else:
        latency = "CONTINUE"
    if "FAIL" in (errors, latency):
        verdict = "FAIL"
    elif errors == "PASS":
        verdict = "PASS"
    else:
        verdict = "CONTINUE"
    action = {"PASS": "proceed", "FAIL": "rollback"}.get(verdict, "hold")
    if verdict == "CONTINUE" and inputs["final"]:
        action = policy["on_inconclusive"]
    return {"verdict": verdict, "errors": errors, "latency": latency, "action": action}


def _minutes(count: int, requests: float, errors: float, latency: float) -> list[Period]:
    """`count` minutes sharing `requests` and `errors` (the first minutes take the rest)."""
    if count == 0:
        return []
    each_r, rest_r = divmod(int(requests), count)
    each_e, rest_e = divmod(int(errors), count)
    return [
        Period(
            60.0 * i,
            float(each_r + (1 if i < rest_r else 0)),
            float(each_e + (1 if i < rest_e else 0)),
            latency,
        )
        for i in range(count)
    ]


def scenario(
    name: str,
    green: tuple[int, int, int],  # minutes, requests, errors
    blue: tuple[int, int, int] | None,
    *,
    green_latency: float = 0.1,
    blue_latency: float = 0.1,
    looks: int = 7,
    final: bool = False,
    policy: MetricPolicy | None = None,
) -> dict[str, Any]:
    policy = policy or MetricPolicy()
    g = _minutes(green[0], green[1], green[2], green_latency)
    b = _minutes(blue[0], blue[1], blue[2], blue_latency) if blue else None
    inputs = rule_input(g, b, policy, looks, final, policy.min_minute_requests)
    return {"name": name, "input": inputs}


def edges() -> list[dict[str, Any]]:
    s = scenario
    found = [
        s("zero errors on both, busy", (5, 20000, 0), (10, 200000, 0)),
        s("zero errors on both, quiet", (3, 30, 0), (10, 300, 0)),
        s("no green requests yet", (0, 0, 0), (10, 1000, 1)),
        s("equal rates, 1 %", (5, 5000, 50), (10, 50000, 500)),
        s("equal rates, huge", (30, 3_000_000, 3000), (10, 1_000_000, 1000)),
        s("half failing in one minute", (1, 100, 50), (10, 1000, 1)),
        s("every request failing, tiny", (1, 3, 3), (10, 1000, 0)),
        s("one request, failed", (1, 1, 1), (10, 1000, 5)),
        s("one request, fine", (1, 1, 0), (10, 1000, 5)),
        s("no blue, far over the limit", (3, 200, 40), None),
        s("no blue, under the limit", (3, 2000, 2), None),
        s("no blue, tiny sample", (1, 4, 1), None),
        s("no blue, exactly at the limit", (5, 1000, 50), None),
        s("idle blue: limits apply", (3, 500, 10), (10, 0, 0)),
        s("2 % at a 10 % canary of 20 req/s", (7, 840, 17), (10, 12000, 0)),
        s("50 % at a 10 % canary", (2, 240, 120), (10, 12000, 2)),
        s("tiny increase, huge volume", (10, 1_000_000, 1100), (10, 1_000_000, 1000)),
        s("a few unlucky requests", (3, 300, 2), (10, 10000, 20)),
        s("final, quiet, proceed", (3, 40, 0), (10, 400, 0), final=True),
        s(
            "final, quiet, rollback",
            (3, 40, 0),
            (10, 400, 0),
            final=True,
            policy=MetricPolicy(on_inconclusive="rollback"),
        ),
        s(
            "slower by ratio and floor, 12 minutes",
            (12, 1200, 0),
            (12, 12000, 0),
            green_latency=0.9,
        ),
        s(
            "slower by ratio, under the floor",
            (12, 1200, 0),
            (12, 12000, 0),
            green_latency=0.002,
            blue_latency=0.001,
        ),
        s("a bit slower: within the ratio", (12, 1200, 0), (12, 12000, 0), green_latency=0.12),
        s("slower, too few minutes to tell", (3, 300, 0), (3, 3000, 0), green_latency=0.9),
        s("no blue, slower than the limit", (12, 1200, 0), None, green_latency=3.0),
        s("one look only", (3, 900, 30), (10, 9000, 0), looks=1),
        s("many looks", (3, 900, 30), (10, 9000, 0), looks=60),
    ]
    # E_g on either side of 5: Fisher below it, Yates at and above.
    for errors_blue in (40, 45, 49, 50, 51, 55, 60):
        found.append(
            s(
                f"expected green errors near 5 (blue {errors_blue})",
                (3, 1000, 12),
                (10, 9000, errors_blue),
            )
        )
    return found


def draws(count: int, seed: int = 20261206) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    found = []
    while len(found) < count:
        minutes = rng.randint(1, 15)
        n1 = rng.choice([rng.randint(1, 50), rng.randint(50, 2000), rng.randint(2000, 200000)])
        base = rng.choice([0.0, 0.001, 0.005, 0.01, 0.05])
        lift = rng.choice([0.0, 0.0, 0.002, 0.01, 0.05, 0.3])
        x1 = sum(1 for _ in range(min(n1, 5000)) if rng.random() < base + lift)
        x1 = round(x1 * n1 / min(n1, 5000))
        with_blue = rng.random() < 0.85
        blue = None
        if with_blue:
            n2 = rng.choice([0, rng.randint(100, 5000), rng.randint(5000, 500000)])
            x2 = round(n2 * base * rng.uniform(0.5, 1.5))
            blue = (10, n2, min(x2, n2))
        green_latency = rng.choice([0.1, 0.1, 0.13, 0.5, 2.5])
        final = rng.random() < 0.2
        policy = MetricPolicy(
            on_inconclusive=rng.choice(["proceed", "rollback"]),
            max_error_increase=rng.choice([0.5, 0.5, 1.0, 0.1]),
        )
        found.append(
            scenario(
                f"draw {len(found) + 1}",
                (minutes, n1, min(x1, n1)),
                blue,
                green_latency=green_latency,
                looks=rng.choice([1, 7, 7, 14]),
                final=final,
                policy=policy,
            )
        )
    return found


def build() -> list[dict[str, Any]]:
    corpus = []
    for item in edges() + draws(260):
        try:
            item["expected"] = reference(item["input"])
        except Borderline:
            continue
        corpus.append(item)
    return corpus


if __name__ == "__main__":
    written = build()
    CORPUS.write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
    verdicts: dict[str, int] = {}
    for item in written:
        verdicts[item["expected"]["verdict"]] = verdicts.get(item["expected"]["verdict"], 0) + 1
    print(f"{len(written)} scenarios written to {CORPUS}: {verdicts}")
