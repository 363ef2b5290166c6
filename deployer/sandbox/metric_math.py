"""CloudWatch metric math, the part alarms of deployer's templates use, for the sandbox's
alarm evaluation (CloudWatch User Guide, "Using metric math"): numbers and query ids,
+ - * /, comparisons (== != < <= > >=), AND/&&, OR/||, NOT/!, parentheses, IF(condition,
true value[, false value]) and FILL(series, value). Evaluated one period at a time: a query
with no datapoint in the period is missing (None), and so is anything computed from it,
except through FILL; IF without a false value is missing where its condition is false.
Comparisons and logic give 1 or 0, as CloudWatch's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Value = float | None
TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/<>!(),]))"
)
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def tokens(expression: str) -> list[str]:
    found, at = [], 0
    text = expression.rstrip()
    while at < len(text):
        match = TOKEN.match(text, at)
        if not match:
            raise ValueError(f"metric math: cannot read {text[at:]!r}")
        found.append(match.group(match.lastgroup or "op"))
        at = match.end()
    return found


class _Parser:
    """Recursive descent, lowest precedence first: OR, AND, comparison, + -, * /, unary."""

    def __init__(self, expression: str, values: Mapping[str, Value]) -> None:
        self.words = tokens(expression)
        self.at = 0
        self.values = values

    def peek(self) -> str | None:
        return self.words[self.at] if self.at < len(self.words) else None

    def take(self, expected: str | None = None) -> str:
        word = self.peek()
        if word is None or (expected is not None and word.upper() != expected):
            raise ValueError(f"metric math: expected {expected or 'more'}, found {word!r}")
        self.at += 1
        return word

    def whole(self) -> Value:
        value = self.either()
        if self.peek() is not None:
            raise ValueError(f"metric math: unexpected {self.peek()!r}")
        return value

    def either(self) -> Value:
        left = self.both()
        while (self.peek() or "").upper() in ("OR", "||"):
            self.take()
            right = self.both()
            left = None if left is None or right is None else float(bool(left) or bool(right))
        return left

    def both(self) -> Value:
        left = self.comparison()
        while (self.peek() or "").upper() in ("AND", "&&"):
            self.take()
            right = self.comparison()
            left = None if left is None or right is None else float(bool(left) and bool(right))
        return left

    def comparison(self) -> Value:
        left = self.sum()
        if self.peek() in COMPARE:
            operator = self.take()
            right = self.sum()
            if left is None or right is None:
                return None
            return float(COMPARE[operator](left, right))
        return left

    def sum(self) -> Value:
        left = self.product()
        while self.peek() in ("+", "-"):
            operator = self.take()
            right = self.product()
            if left is None or right is None:
                left = None
            else:
                left = left + right if operator == "+" else left - right
        return left

    def product(self) -> Value:
        left = self.unary()
        while self.peek() in ("*", "/"):
            operator = self.take()
            right = self.unary()
            if left is None or right is None or (operator == "/" and right == 0):
                left = None  # CloudWatch drops a datapoint divided by zero
            else:
                left = left * right if operator == "*" else left / right
        return left

    def unary(self) -> Value:
        word = (self.peek() or "").upper()
        if word in ("-", "!", "NOT"):
            self.take()
            value = self.unary()
            if value is None:
                return None
            return -value if word == "-" else float(not value)
        return self.atom()

    def atom(self) -> Value:
        word = self.take()
        if word == "(":
            value = self.either()
            self.take(")")
            return value
        if re.fullmatch(r"\d+(?:\.\d+)?", word):
            return float(word)
        if self.peek() == "(":
            return self.call(word.upper())
        if word not in self.values:
            raise ValueError(f"metric math: no query has the id {word!r}")
        return self.values[word]

    def call(self, function: str) -> Value:
        self.take("(")
        arguments = [self.either()]
        while self.peek() == ",":
            self.take()
            arguments.append(self.either())
        self.take(")")
        if function == "FILL" and len(arguments) == 2:
            return arguments[1] if arguments[0] is None else arguments[0]
        if function == "IF" and len(arguments) in (2, 3):
            condition = arguments[0]
            if condition is None:
                return None
            if condition:
                return arguments[1]
            return arguments[2] if len(arguments) == 3 else None
        raise ValueError(f"metric math: {function} with {len(arguments)} argument(s) is not known")


def evaluate(expression: str, values: Mapping[str, Value]) -> Value:
    """The expression's value for one period, given each query id's value (None: missing)."""
    return _Parser(expression, values).whole()
