"""String options as Enums: one case-insensitive parser with one error message for all of them."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

__all__ = ["parse_enum"]

E = TypeVar("E", bound=enum.Enum)


def parse_enum(cls: type[E], value: Any, name: str) -> E:
    """Return ``value`` as a member of ``cls``: a member, or its value as a string.

    Strings are matched case-insensitively, ignoring surrounding white space; ``-`` and inner
    spaces may stand for ``_``.

    Raises
    ------
    ValueError
        Anything else; the message names the option (``name``) and lists the valid values.

    Examples
    --------
    >>> class Colour(enum.StrEnum):
    ...     LIGHT_RED = "light_red"
    >>> parse_enum(Colour, " Light-Red", "colour") is Colour.LIGHT_RED
    True
    >>> parse_enum(Colour, "blue", "colour")
    Traceback (most recent call last):
    ...
    ValueError: colour: expected one of 'light_red', got 'blue'
    """
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        for candidate in (key, "_".join(key.replace("-", " ").split())):
            try:
                return cls(candidate)
            except ValueError:
                pass
    options = ", ".join(repr(m.value) for m in cls)
    raise ValueError(f"{name}: expected one of {options}, got {value!r}")
