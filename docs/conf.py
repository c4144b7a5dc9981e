"""Sphinx configuration for the trio_search documentation.

Build it with ``nox -s docs`` (warnings are errors, nitpicky mode on); the
HTML lands in ``docs/_build/html``.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Any

# Document the package of this checkout, not whatever is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attrs

import trio_search

# sphinx-autodoc-typehints 3.6 calls an API that Sphinx 9 deprecates; the
# warning is theirs to fix and says nothing about these docs.
warnings.filterwarnings(
    "ignore", message=".*set_application.* is deprecated", module="sphinx_autodoc_typehints"
)

project = "trio_search"
author = "trio_search contributors"
copyright = "2026, trio_search contributors"
release = trio_search.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxcontrib_trio",
    # After napoleon, so that it sees the docstrings napoleon rewrote.
    "sphinx_autodoc_typehints",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# README.md is the index for readers browsing docs/ on a forge; index.md is
# the site's landing page.
exclude_patterns = ["_build", "README.md"]

html_theme = "furo"
html_title = f"trio_search {release}"

myst_enable_extensions = ["colon_fence"]
# Links such as protocol.md#the-query-action resolve to section anchors.
myst_heading_anchors = 3

napoleon_google_docstring = True
napoleon_numpy_docstring = False

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
typehints_use_signature = False
# Every parameter gets its type, documented in Args or not.
always_document_param_types = True
typehints_use_signature_return = False

nitpicky = True
# The build runs offline (CI has no route to other projects' documentation),
# so there is no intersphinx: references to the standard library, Trio and
# tantivy cannot resolve here, and are the only ones let through.
nitpick_ignore_regex = [
    (r"py:.*", r"(collections|collections\.abc|typing|pathlib|ssl|enum|ipaddress)\..*"),
    (r"py:.*", r"trio\..*"),
    # tantivy's Python binding publishes no Sphinx inventory at all.
    (r"py:.*", r"tantivy\..*"),
    # prometheus_client's types (Metrics' registry): no intersphinx here.
    (r"py:.*", r"prometheus_client\..*"),
]
nitpick_ignore = [
    # Private types in public signatures: SearchIndex.words returns the
    # query's words (_query.Word), SearchIndex.from_documents accepts
    # anything document-shaped (_schema.DocumentLike). Not part of the API
    # to import, so not documented on their own.
    ("py:class", "trio_search._query.Word"),
    ("py:class", "trio_search._schema.DocumentLike"),
    # The "..." of tuple[int, ...], which sphinx-autodoc-typehints links to
    # the Ellipsis constant of Python's documentation (no intersphinx here).
    ("py:data", "Ellipsis"),
    # SearchIndex.ranking_cache_counts: two counters, also in the stats
    # action (docs/search.md, "The query cache").
    ("py:class", "trio_search._ranking_cache.CacheCounts"),
]


def _link_outside_docs(app: object, docname: str, source: list[str]) -> None:
    """Make links from docs/ to the repository's other files downloads.

    The pages link to ``../benchmarks/RESULTS.md`` and the like, which work
    when reading the files in the repository; in the site, those files are
    not pages, so MyST's ``path:`` scheme copies them in as downloads.
    """
    source[0] = re.sub(r"\]\(\.\./(benchmarks|contrib|trio_search)/", r"](path:../\1/", source[0])


def _resolve_attrs_annotations() -> None:
    """Turn the string annotations of the public attrs classes into types.

    attrs compiles ``__init__`` with globals of its own, so the postponed
    annotations there (``Path``, ``Deferred``, ...) cannot be evaluated by
    sphinx-autodoc-typehints; ``attrs.resolve_types`` evaluates them in the
    class's module, and the results are copied to ``__init__``.
    """
    for name in trio_search.__all__:
        cls = getattr(trio_search, name)
        if not (isinstance(cls, type) and attrs.has(cls)):
            continue
        attrs.resolve_types(cls)
        init_annotations = cls.__init__.__annotations__
        for field in attrs.fields(cls):
            if field.init and field.alias in init_annotations:
                init_annotations[field.alias] = field.type


def setup(app: Any) -> None:
    _resolve_attrs_annotations()
    app.connect("source-read", _link_outside_docs)
