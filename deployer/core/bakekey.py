"""What changed between an image's recorded bake inputs and the ones a bake would use. Pure."""

from __future__ import annotations

from collections.abc import Mapping


def changed_inputs(
    recorded: Mapping[str, str], wanted: Mapping[str, str], names: Mapping[str, str]
) -> list[str]:
    """The names of the inputs whose value differs (`names`: tag -> what it names)."""
    return [name for tag, name in names.items() if recorded.get(tag) != wanted.get(tag)]
