"""Every error code is a constant of trio_search._codes, and docs/protocol.md
lists exactly the ones an error answer can carry (``_codes.SENT``)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import trio_search
from tests.test_app import json_message, result
from trio_search import SearchApp, _codes

PACKAGE = Path(trio_search.__file__).parent
PROTOCOL_DOC = Path(__file__).parent.parent / "docs" / "protocol.md"


def documented_codes() -> set[str]:
    """The codes in the first column of the tables under "## Error codes"."""
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    section = text.split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def constants_used() -> set[str]:
    """The names of ``_codes`` that the package's modules use as ``codes.NAME``."""
    used: set[str] = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "codes"
            ):
                used.add(node.attr)
    return used


def test_no_error_code_is_a_string_literal() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    assert not (
                        keyword.arg == "code" and isinstance(keyword.value, ast.Constant)
                    ), f"{path.name}:{node.lineno}: use a constant of trio_search._codes"


def test_every_code_that_can_be_sent_is_documented_and_nothing_else() -> None:
    assert documented_codes() == set(_codes.SENT)


def test_every_code_constant_is_used() -> None:
    names = {name for name in vars(_codes) if name.isupper() and name != "SENT"}
    unused = names - constants_used()
    assert not unused, f"codes nothing uses: {sorted(unused)}"


def test_codes_are_unique() -> None:
    values = [value for name, value in vars(_codes).items() if name.isupper() and name != "SENT"]
    assert len(values) == len(set(values))


def test_the_query_example_answers_as_shown() -> None:
    """The request shown under "The `query` action", sent to the tutorial's
    data, gets the answer shown there."""
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    section = text.split("\n## The `query` action\n", 1)[1].split("\n## ", 1)[0]
    request, answer = [
        json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)
    ]
    assert result(SearchApp().respond(json_message(request))) == answer
