"""The package's public names, imported when first used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trio_search


def test_every_public_name_resolves() -> None:
    for name in trio_search.__all__:
        value = getattr(trio_search, name)
        assert value is not None
        assert name in dir(trio_search)
    assert trio_search.SearchServer.__module__ == "trio_search._server"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'SearchServr'"):
        _ = trio_search.SearchServr  # type: ignore[attr-defined]


def test_star_import_gives_the_public_names() -> None:
    names: dict[str, object] = {}
    exec("from trio_search import *", names)
    assert set(trio_search.__all__) <= set(names)


def test_the_index_command_does_not_load_the_server() -> None:
    """``trio-search-index`` starts without importing Trio or the server (a
    third of a second of start-up before it reads a document)."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, trio_search._index_cli; "
            "print(sorted(m for m in ('trio', 'trio_search._server', 'prometheus_client') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
