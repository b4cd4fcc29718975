"""The settings of a run: the parsed flags, with the values a task's preset decides filled in, read-only.

argparse's Namespace holds what the user typed (None where a preset decides); a command resolves it once
into :class:`Settings` and reads only that from then on.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any


class Settings:
    """Read-only attributes, ``settings.lr``; :meth:`replace` makes a changed copy."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]):
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"settings are read-only; use settings.replace({name}=...)")

    def replace(self, **changes: Any) -> Settings:
        return Settings({**self._values, **changes})

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __eq__(self, other) -> bool:
        return isinstance(other, Settings) and self._values == other._values

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"
