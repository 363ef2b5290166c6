"""The metric gate rule (deployer/core/gate_rule.jsonata), evaluated in process by a JSONata
engine (jsonata-python). The Step Functions runner embeds the same text (`rule_text`); this
module only loads and runs it: the decision is the text's.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

RULE_FILE = "gate_rule.jsonata"
COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def jsonata_file(name: str) -> str:
    """A JSONata expression shipped in deployer.core, without its comments: the text that
    both runners evaluate (a state machine definition carries no prose).
    """
    text = resources.files("deployer.core").joinpath(name).read_text(encoding="utf-8")
    return COMMENT.sub("", text).strip()


@functools.cache
def rule_text() -> str:
    """The rule, as shipped in the package and embedded in the state machine."""
    return jsonata_file(RULE_FILE)


@functools.cache
def _compiled() -> Any:
    import jsonata  # imported when a gate first judges metrics

    return jsonata.Jsonata(rule_text())


def evaluate(inputs: dict[str, Any]) -> dict[str, Any]:
    """The rule's verdict, action and numbers for `inputs` (core.gate_inputs.rule_input)."""
    result = _compiled().evaluate(inputs)
    if not isinstance(result, dict) or result.get("verdict") not in ("PASS", "FAIL", "CONTINUE"):
        raise RuntimeError(f"the gate rule answered {result!r}")  # a broken rule: fail closed
    return result
