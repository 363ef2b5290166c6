"""Replay the metric gate rule's golden corpus against AWS Step Functions' own JSONata engine
(the TestState API), to show that the state machine decides as the CLI does:

    python bench/gate_corpus_sfn.py --role-arn arn:aws:iam::<account>:role/<any role> [--json]

Needs real AWS credentials with states:TestState (and iam:PassRole on the role, which
TestState requires even for a Pass state). Nothing is created and nothing is billed: TestState
runs one state in isolation. Not run in CI (no AWS there); the CI runs the same corpus
through the in-process engine (tests/unit/test_metric_judgement.py).

Each scenario runs as a Pass state in JSONata mode whose Output applies the rule's text to the
state's input, as the release state machine applies it (a path step; the text never names
`$` or `$$`):
`{"QueryLanguage": "JSONata", "Type": "Pass", "Output": "{% $states.input.(<rule>) %}", ...}`.
Prints how many verdicts and actions agree, and each one that does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer.release.gate_rule import rule_text  # noqa: E402

CORPUS = REPO / "tests" / "unit" / "gate_corpus.json"


def state_definition() -> str:
    return json.dumps(
        {
            "QueryLanguage": "JSONata",
            "Type": "Pass",
            "Output": "{% $states.input.(" + rule_text() + ") %}",
            "End": True,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role-arn", required=True, help="any role TestState may pass")
    parser.add_argument("--region", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import boto3

    sfn = boto3.client("stepfunctions", region_name=args.region)
    definition = state_definition()
    items = json.loads(CORPUS.read_text())
    disagreements = []
    for item in items:
        answer = sfn.test_state(
            definition=definition, roleArn=args.role_arn, input=json.dumps(item["input"])
        )
        if answer.get("status") != "SUCCEEDED":
            disagreements.append({"name": item["name"], "error": answer.get("error")})
            continue
        output = json.loads(answer["output"])
        seen = {
            "verdict": output["verdict"],
            "errors": output["errors"]["verdict"],
            "latency": output["latency"]["verdict"],
            "action": output["action"],
        }
        if seen != item["expected"]:
            disagreements.append({"name": item["name"], "seen": seen, "expected": item["expected"]})
    figures = {"scenarios": len(items), "agree": len(items) - len(disagreements)}
    if args.json:
        print(json.dumps({**figures, "disagreements": disagreements}, indent=2))
        return
    print(f"{figures['agree']} of {figures['scenarios']} scenarios agree with the corpus")
    for item in disagreements:
        print(f"  {item}")


if __name__ == "__main__":
    main()
