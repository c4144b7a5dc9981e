"""Full-text queries per second one replica holds, on an index of N documents.

A small figure for docs/deploy.md's capacity section: builds an on-disk
index of generated documents with ``trio-search-index build``, serves it with
one ``trio-search-server --index`` (one process), and runs keep-alive
clients that send ``query`` requests (a rotating set of one- and two-word
queries, typos and prefixes included) for ``--duration`` seconds, counting
answers. Client and server share the machine, so the figure is a floor.

Usage: ``python benchmarks/capacity.py --documents 100000 --duration 10``
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import trio

import trio_search

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from cluster import read_line, script  # noqa: E402

#: Words of the generated documents: a vocabulary of this many, Zipf-like.
VOCABULARY = 5_000
WORDS_PER_DOCUMENT = 30
#: Broad queries: each word is in about 2 of 9 documents (two of the nine
#: special words per document), so a query scores tens of thousands of
#: documents on a large index: the expensive end.
BROAD = ("rabbit", "white rabit", "matrix oracle", "morph", "neo trinity", "agent smi")
#: Selective queries: words of rank 4,000-5,000 in the vocabulary, each in
#: under 0.1 % of the documents: the cheap end (typos and prefixes still
#: looked up).
SELECTIVE = ("wxg", "ofh rabbit", "gnh", "yuh", "qci", "hki")


def word(n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    text = ""
    n += 26 * 26
    while n:
        n, r = divmod(n, 26)
        text += letters[r]
    return text


def write_documents(path: pathlib.Path, documents: int) -> None:
    rng = random.Random(1)
    special = ["rabbit", "white", "matrix", "oracle", "morpheus", "neo", "trinity", "agent"]
    special += ["smith"]
    # Zipf-like: the word of rank r is drawn with weight 1 / r.
    vocabulary = [word(n) for n in range(VOCABULARY)]
    weights = list(itertools.accumulate(1 / (n + 1) for n in range(VOCABULARY)))
    with path.open("w", encoding="utf-8") as out:
        for n in range(documents):
            words = rng.choices(vocabulary, cum_weights=weights, k=28)
            words += rng.sample(special, 2)
            rng.shuffle(words)
            record = {"key": f"doc-{n}", "answer": f"document {n}", "text": " ".join(words)}
            out.write(json.dumps(record) + "\n")


async def load(
    port: int, connections: int, duration: float, queries: Sequence[str]
) -> tuple[int, int]:
    ok = failed = 0
    deadline = trio.current_time() + duration

    async def one(offset: int) -> None:
        nonlocal ok, failed
        async with trio_search.open_client("127.0.0.1", port) as client:
            n = offset
            while trio.current_time() < deadline:
                try:
                    await client.query(queries[n % len(queries)], limit=10)
                    ok += 1
                except trio_search.TrioSearchError:
                    failed += 1
                n += 1

    async with trio.open_nursery() as nursery:
        for c in range(connections):
            nursery.start_soon(one, c)
    return ok, failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trio-search-capacity-") as tmp:
        work = pathlib.Path(tmp)
        data = work / "docs.jsonl"
        write_documents(data, args.documents)
        index = work / "docs.idx"
        began = time.monotonic()
        subprocess.run(
            [script("trio-search-index"), "build", str(data), "--index", str(index)],
            check=True,
            capture_output=True,
        )
        built = time.monotonic() - began
        size = sum(p.stat().st_size for p in index.rglob("*") if p.is_file())
        server = subprocess.Popen(
            [script("trio-search-server"), "--port", "0", "--index", str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            line = read_line(server.stdout, 30)
            port = int(line.rsplit(b":", 1)[1])
            results = {
                name: trio.run(load, port, args.connections, args.duration, queries)
                for name, queries in (("broad", BROAD), ("selective", SELECTIVE))
            }
        finally:
            server.terminate()
            server.wait(30)
    failed = sum(f for _ok, f in results.values())
    rates = ", ".join(
        f"{name} {ok / args.duration:,.0f} queries/s" for name, (ok, _f) in results.items()
    )
    print(
        f"{args.documents:,} documents (index {size / 1e6:.1f} MB, built in {built:.1f} s): "
        f"{rates} ({args.connections} keep-alive clients, one server process), {failed} failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
