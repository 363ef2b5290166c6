"""Which logical ids a CloudFormation template fragment refers to (Ref, GetAtt, Sub): one
reading, for the order stacks create (stacks.py) and delete (stack_deletes.py) resources in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any


def references(node: Any) -> Iterator[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, Sub)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                yield str(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                yield from re.findall(r"\$\{([A-Za-z0-9]+)[.}]", str(text))
                yield from references(value)
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)
