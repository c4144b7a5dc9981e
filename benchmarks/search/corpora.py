"""The search benchmark's corpora, written once as JSON Lines and cached.

Two corpora, each a file of one JSON object per line with ``key``,
``answer`` and the text fields to search:

- ``stdlib``: real text present on every machine, the docstrings of the
  Python standard library (:func:`write_stdlib`). ``key`` is the dotted
  qualified name (``json.decoder.JSONDecoder.decode``), ``answer`` the
  docstring's first line, ``doc`` the whole docstring. Tests, ``idlelib``'s
  and ``site-packages`` are left out, so two machines with the same Python
  version get the same file.
- ``generated``: N synthetic documents whose words follow a Zipf law over a
  seeded vocabulary of pseudo-words (:func:`write_generated`). ``key`` is
  ``doc-<n>``, ``answer`` the title (about 6 words), ``body`` about 30 more.

Both are deterministic: the same arguments give the same bytes. Files go to
the cache directory (``benchmarks/.cache/``, git-ignored) under a name that
holds every parameter, so a rerun reuses them for free.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import os
import random
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

#: Where corpora, query lists and built indexes are kept between runs.
CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache"

#: Bump when the generator changes, so stale cached files are not reused.
GENERATOR_VERSION = 1
#: Seed of the generated corpus's vocabulary and documents.
GENERATED_SEED = 20260
#: Distinct pseudo-words in the generated corpus's vocabulary.
VOCABULARY_SIZE = 50_000
#: Shortest and longest pseudo-word, in letters.
WORD_LENGTHS = (2, 14)
#: Exponent of the Zipf law (word of frequency rank r has weight 1 / r**s);
#: about 1 for English text.
ZIPF_EXPONENT = 1.0
#: Words in a title, and in a body, as (mean, spread): the count is drawn
#: uniformly from mean - spread to mean + spread.
TITLE_WORDS = (6, 2)
BODY_WORDS = (30, 10)
#: Documents generated per batch (one ``random.choices`` call each).
BATCH_DOCUMENTS = 10_000

#: Folders of the standard library left out of the ``stdlib`` corpus: tests
#: (absent from some distributions' builds) and third-party packages.
STDLIB_SKIPPED_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
)

#: Letters of pseudo-words, weighted roughly as in English text.
_LETTER_WEIGHTS = {
    "e": 12.7, "t": 9.1, "a": 8.2, "o": 7.5, "i": 7.0, "n": 6.7, "s": 6.3, "h": 6.1,
    "r": 6.0, "d": 4.3, "l": 4.0, "c": 2.8, "u": 2.8, "m": 2.4, "w": 2.4, "f": 2.2,
    "g": 2.0, "y": 2.0, "p": 1.9, "b": 1.5, "v": 1.0, "k": 0.8, "j": 0.2, "x": 0.2,
    "q": 0.1, "z": 0.1,
}  # fmt: skip


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"search-bench: {message}", file=sys.stderr, flush=True)


# --- The standard library's docstrings ---------------------------------------


def stdlib_path() -> Path:
    """The folder of this interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _module_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(dotted module name, file) for every .py file under ``root``, sorted."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            name for name in dirs if name not in STDLIB_SKIPPED_DIRS and name.isidentifier()
        )
        relative = Path(folder).relative_to(root).parts
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            stem = name[:-3]
            parts = list(relative) if stem == "__init__" else [*relative, stem]
            if not parts or not all(part.isidentifier() for part in parts):
                continue
            yield ".".join(parts), Path(folder) / name


def _docstrings(module: str, tree: ast.Module) -> Iterator[tuple[str, str]]:
    """(qualified name, docstring) of the module and every class and function
    in it, nested ones included, in source order."""
    doc = ast.get_docstring(tree, clean=True)
    if doc:
        yield module, doc

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}.{child.name}"
                doc = ast.get_docstring(child, clean=True)
                if doc:
                    yield name, doc
                yield from walk(child, name)
            elif not isinstance(child, ast.expr):
                # Definitions under if/try/with blocks count too.
                yield from walk(child, prefix)

    yield from walk(tree, module)


def stdlib_documents(root: Path | None = None) -> Iterator[dict[str, str]]:
    """The ``stdlib`` corpus's records, in a deterministic order; each key
    once (the first definition wins)."""
    seen: set[str] = set()
    for module, path in _module_files(root or stdlib_path()):
        try:
            source = path.read_bytes()
            tree = ast.parse(source, filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for key, doc in _docstrings(module, tree):
            if key in seen:
                continue
            seen.add(key)
            doc = inspect.cleandoc(doc)
            answer = next((line.strip() for line in doc.splitlines() if line.strip()), "")
            yield {"key": key, "answer": answer, "doc": doc}


def write_stdlib(cache_dir: Path = CACHE_DIR) -> Path:
    """The ``stdlib`` corpus file, written on first use.

    Its name holds the Python version, whose standard library it reads.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    path = cache_dir / f"stdlib-py{version}-v{GENERATOR_VERSION}.jsonl"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    count = 0
    with partial.open("w", encoding="utf-8") as file:
        for record in stdlib_documents():
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    partial.replace(path)
    log(f"wrote {count:,} stdlib docstrings to {path} in {time.perf_counter() - started:.1f} s")
    return path


# --- The generated corpus ----------------------------------------------------


def vocabulary(seed: int = GENERATED_SEED, size: int = VOCABULARY_SIZE) -> list[str]:
    """``size`` distinct pseudo-words, most frequent first (short words tend
    to come first, as in natural language)."""
    rng = random.Random(seed)
    letters = list(_LETTER_WEIGHTS)
    cumulative = list(itertools.accumulate(_LETTER_WEIGHTS.values()))
    shortest, longest = WORD_LENGTHS
    lengths = range(shortest, longest + 1)
    # Lengths peak around 5-7 letters, as English words do.
    length_weights = [1.0 / (1 + abs(length - 6)) ** 1.5 for length in lengths]
    words: set[str] = set()
    ordered: list[tuple[float, str]] = []
    while len(ordered) < size:
        (length,) = rng.choices(lengths, length_weights)
        word = "".join(rng.choices(letters, cum_weights=cumulative, k=length))
        if word in words:
            continue
        words.add(word)
        # Rank by length with noise: frequent words are short, but not only.
        ordered.append((length + rng.gauss(0, 2.5), word))
    ordered.sort()
    return [word for _, word in ordered]


def zipf_cumulative_weights(size: int, exponent: float = ZIPF_EXPONENT) -> list[float]:
    """Cumulative weights of ranks 1..size under a Zipf law."""
    return list(itertools.accumulate(1.0 / rank**exponent for rank in range(1, size + 1)))


def generated_documents(count: int, seed: int = GENERATED_SEED) -> Iterator[tuple[str, str]]:
    """(title, body) of ``count`` generated documents, deterministic for ``seed``."""
    words = vocabulary(seed)
    cumulative = zipf_cumulative_weights(len(words))
    rng = random.Random(seed + 1)
    title_mean, title_spread = TITLE_WORDS
    body_mean, body_spread = BODY_WORDS
    done = 0
    while done < count:
        batch = min(BATCH_DOCUMENTS, count - done)
        sizes = [
            (
                rng.randint(title_mean - title_spread, title_mean + title_spread),
                rng.randint(body_mean - body_spread, body_mean + body_spread),
            )
            for _ in range(batch)
        ]
        drawn = rng.choices(words, cum_weights=cumulative, k=sum(t + b for t, b in sizes))
        at = 0
        for title_size, body_size in sizes:
            title = " ".join(drawn[at : at + title_size])
            at += title_size
            body = " ".join(drawn[at : at + body_size])
            at += body_size
            yield title, body
        done += batch


def generated_path(count: int, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the generated corpus of ``count`` documents is cached."""
    return cache_dir / f"generated-{count}-s{GENERATED_SEED}-v{GENERATOR_VERSION}.jsonl"


def write_generated(count: int, cache_dir: Path = CACHE_DIR) -> Path:
    """The generated corpus of ``count`` documents, written on first use."""
    path = generated_path(count, cache_dir)
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="ascii") as file:
        lines: list[str] = []
        for number, (title, body) in enumerate(generated_documents(count)):
            # Pseudo-words are lowercase ASCII letters: nothing to escape.
            lines.append(f'{{"key":"doc-{number}","answer":"{title}","body":"{body}"}}\n')
            if len(lines) == BATCH_DOCUMENTS:
                file.writelines(lines)
                lines.clear()
        file.writelines(lines)
    partial.replace(path)
    log(f"wrote {count:,} generated documents to {path} in {time.perf_counter() - started:.1f} s")
    return path


def text_fields(record: dict[str, str]) -> list[str]:
    """The searchable fields of a record: every string field but ``key``."""
    return [name for name, value in record.items() if name != "key" and isinstance(value, str)]


def count_lines(path: Path) -> int:
    """Documents in a JSON Lines corpus."""
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
