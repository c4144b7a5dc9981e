"""What a valid setting is, said once: for ``ServerSettings`` and the CLIs.

Each check takes a value already of Python's type and returns it, or raises
``ValueError`` with the reason, phrased to follow a setting's name ("must be
..."). :func:`attrs_validator` makes one an ``attrs`` validator (the message
names the field); :func:`option_type` an ``argparse`` type (the message
names the option, as argparse does).
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from ._limits import MAX_ENCODABLE_HEADER_LENGTH

T = TypeVar("T")


def non_negative_int(value: int) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"must be a non-negative integer, not {value!r}")
    return value


def positive_int(value: int) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"must be a positive integer, not {value!r}")
    return value


def seconds(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"must be a number of seconds, not {value!r}")
    if value <= 0:
        raise ValueError(f"must be more than 0 seconds, not {value!r}")
    return value


def port(value: int) -> int:
    if type(value) is not int or not 0 <= value <= 65535:
        raise ValueError(f"must be an integer from 0 to 65535, not {value!r}")
    return value


def remote_port(value: int) -> int:
    # A port to connect to: 0 means "any free port" only when binding.
    if type(value) is not int or not 1 <= value <= 65535:
        raise ValueError(f"must be an integer from 1 to 65535, not {value!r}")
    return value


def header_length(value: int) -> int:
    if type(value) is not int or not 1 <= value <= MAX_ENCODABLE_HEADER_LENGTH:
        raise ValueError(
            f"must be an integer from 1 to {MAX_ENCODABLE_HEADER_LENGTH} "
            f"(the 2-byte prefix), not {value!r}"
        )
    return value


def host(value: str) -> str:
    """An address or hostname, returned as given, or an IPv6 address in
    brackets (``[::1]``, as URLs and ``--metrics`` write it) returned without
    them, which is how the resolver wants it; brackets around anything else
    (an IPv4 address, a name, a port) are refused."""
    if not isinstance(value, str):
        raise ValueError(f"must be an address or hostname (a string), not {value!r}")
    if not (value.startswith("[") or value.endswith("]")):
        return value
    inner = value[1:-1]
    if value.startswith("[") and value.endswith("]") and _is_ipv6_address(inner):
        return inner
    raise ValueError(
        "must be an address or hostname, with brackets only around an IPv6 address "
        f"(as in [::1], without a port), not {value!r}"
    )


def _is_ipv6_address(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


#: What quotes a CSV cell (Python's csv module's default, and every
#: spreadsheet's): a cell holding the delimiter or a line break is quoted.
CSV_QUOTE = '"'


def csv_delimiter(value: str) -> str:
    """One character separating a CSV file's cells: not the quote, a line
    break or NUL (which the reader must see as themselves), nor a letter or
    digit (which cells are made of: a typo, such as ``t`` for a tab)."""
    if not isinstance(value, str) or len(value) != 1:
        raise ValueError(f"must be one character, not {value!r}")
    if value == CSV_QUOTE:
        raise ValueError(f"cannot be {CSV_QUOTE!r}, which quotes cells")
    if value in "\r\n\x00":
        raise ValueError(f"cannot be {value!r}: a line break or NUL cannot separate cells")
    if value.isalnum():
        raise ValueError(f"cannot be a letter or digit, such as {value!r}")
    return value


def boolean(value: bool) -> bool:
    # Not truthiness: "no" and 0 must not turn a setting on or stay off.
    if type(value) is not bool:
        raise ValueError(f"must be True or False, not {value!r}")
    return value


def attrs_validator(
    check: Callable[[Any], object], *, optional: bool = False
) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """``check`` as an attrs validator; ``optional`` lets ``None`` through."""

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if optional and value is None:
            return
        try:
            check(value)
        except ValueError as exc:
            raise ValueError(f"{attribute.name} {exc}") from None

    return validate


def option_type(check: Callable[[T], T], parse: Callable[[str], T]) -> Callable[[str], T]:
    """``check`` as an argparse type, after ``parse`` (``int``, ``float``)
    has read the text."""

    def convert(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert
