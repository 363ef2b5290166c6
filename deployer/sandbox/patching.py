"""A set of named replacements of moto methods, applied and undone together. Applying wraps
whatever is there at that moment, so patches of one method chain (patches.py's CreateImage
capture, then lifecycle.py's pending image).
"""

from __future__ import annotations

from typing import Any


class Patches:
    def __init__(self) -> None:
        self._wanted: dict[str, tuple[Any, str, Any]] = {}
        self._original: dict[str, Any] = {}

    def add(self, key: str, owner: Any, attribute: str, replacement: Any) -> None:
        self._wanted[key] = (owner, attribute, replacement)

    def original(self, key: str) -> Any:
        """What `key` replaced (while applied), else the method as it is now."""
        if key in self._original:
            return self._original[key]
        owner, attribute, _ = self._wanted[key]
        return getattr(owner, attribute)

    def apply(self) -> None:
        if self._original:
            return
        for key, (owner, attribute, replacement) in self._wanted.items():
            self._original[key] = getattr(owner, attribute)
            setattr(owner, attribute, replacement)

    def restore(self) -> None:
        for key, (owner, attribute, _) in self._wanted.items():
            if key in self._original:
                setattr(owner, attribute, self._original.pop(key))
