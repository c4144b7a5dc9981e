"""The search benchmark's own pieces (benchmarks/search/) do what they claim.

Correctness only, on tiny corpora: corpora are deterministic, queries are of
the kind they say, replies are compared fairly, the report keeps the rest of
RESULTS.md, and the load generator drives the FTS5 peer without a failure.
No speed is asserted (``nox -s bench`` measures it).
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rapidfuzz.distance import OSA

ROOT = Path(__file__).resolve().parent.parent
SEARCH_BENCH = ROOT / "benchmarks" / "search"
sys.path.insert(0, str(SEARCH_BENCH))

import corpora  # noqa: E402
import engines  # noqa: E402
import queries  # noqa: E402
import report  # noqa: E402


def test_generated_corpus_is_deterministic(tmp_path: Path) -> None:
    first = corpora.write_generated(300, tmp_path / "a")
    second = corpora.write_generated(300, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    records = [json.loads(line) for line in first.read_text().splitlines()]
    assert [record["key"] for record in records] == [f"doc-{n}" for n in range(300)]
    low, high = corpora.WORD_LENGTHS
    for record in records:
        assert set(record) == {"key", "answer", "body"}
        words = record["answer"].split() + record["body"].split()
        assert all(low <= len(word) <= high and word.isalpha() for word in words)


def test_stdlib_documents_walk_modules_classes_functions(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "tests").mkdir(parents=True)
    (package / "__init__.py").write_text('"""The package.\n\nMore."""\n')
    (package / "mod.py").write_text(
        '"""A module."""\n'
        "class Thing:\n"
        '    """A thing."""\n'
        "    def run(self):\n"
        '        """Run it.\n\n        Details."""\n'
        "if True:\n"
        "    def helper():\n"
        '        """Help."""\n'
        "def helper():\n"
        '    """Defined twice: the first one wins."""\n'
    )
    (package / "tests" / "test_x.py").write_text('"""Left out."""\n')
    documents = list(corpora.stdlib_documents(tmp_path))
    assert [(doc["key"], doc["answer"]) for doc in documents] == [
        ("pkg", "The package."),
        ("pkg.mod", "A module."),
        ("pkg.mod.Thing", "A thing."),
        ("pkg.mod.Thing.run", "Run it."),
        ("pkg.mod.helper", "Help."),
    ]
    assert documents[3]["doc"] == "Run it.\n\nDetails."


def test_typo_is_one_edit() -> None:
    rng = random.Random(1)
    for _ in range(500):
        word = "".join(rng.choices("abcdefgh", k=rng.randint(5, 12)))
        assert OSA.distance(word, queries.typo(word, rng)) <= 1


def test_query_lists_are_of_their_kind() -> None:
    rng = random.Random(2)
    letters = "abcdefghij"
    docs = [
        ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(20)] for _ in range(50)
    ]
    lists = queries.make_queries(docs, 200, seed=3)
    assert list(lists) == list(queries.QUERY_TYPES)
    vocabulary = {word for words in docs for word in words}
    assert all(len(lists[kind]) == 200 for kind in lists)
    assert all(query["value"] in vocabulary for query in lists["term"])
    for query in lists["two_word"]:
        first, second = query["value"].split()
        assert first != second and any(first in words and second in words for words in docs)
    for query in lists["typo"]:
        assert query["value"] not in vocabulary
        assert len(query["intended"]) >= queries.TYPO_MIN_LENGTH
    for query in lists["prefix"]:
        assert 3 <= len(query["value"]) <= 5
        value = query["value"]
        assert any(word.startswith(value) and word != value for word in vocabulary)
    assert queries.make_queries(docs, 200, seed=3) == lists


@pytest.mark.parametrize(
    ("got", "expected", "same"),
    [
        ([("a", 3.0), ("b", 2.0)], [("a", 3.0), ("b", 2.0)], True),
        # Which of two tied last hits makes the page is the engine's choice.
        ([("a", 3.0), ("c", 2.0)], [("a", 3.0), ("b", 2.0)], True),
        ([("c", 3.0), ("a", 2.0)], [("a", 3.0), ("b", 2.0)], False),
        ([("a", 3.0), ("b", 1.0)], [("a", 3.0), ("b", 2.0)], False),
        ([("a", 3.0)], [("a", 3.0), ("b", 2.0)], False),
        ([], [], True),
    ],
)
def test_same_ranking_allows_only_ties(
    got: list[tuple[str, float]], expected: list[tuple[str, float]], same: bool
) -> None:
    assert engines.same_ranking(got, expected) is same


def test_report_section_replaced_and_the_rest_kept() -> None:
    section = f"{report.START}\nnew\n{report.END}"
    appended = report.replace_section("# Benchmark results\n\ntable\n", section)
    assert appended == f"# Benchmark results\n\ntable\n\n{section}\n"
    old = f"# Benchmark results\n\ntable\n\n{report.START}\nold\n{report.END}\ntail\n"
    replaced = report.replace_section(old, section)
    assert replaced == f"# Benchmark results\n\ntable\n\n{section}\ntail\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _loadgen(port: int, requests: Path, output: Path, *options: str) -> dict[str, object]:
    argv = [sys.executable, str(SEARCH_BENCH / "loadgen.py"), "127.0.0.1", str(port)]
    argv += ["--requests", str(requests), "--output", str(output), *options]
    subprocess.run(argv, check=True, timeout=60, env={"PYTHONPATH": str(ROOT)})
    result: dict[str, object] = json.loads(output.read_text())
    return result


@pytest.mark.slow
def test_loadgen_drives_the_fts5_peer(tmp_path: Path) -> None:
    data = corpora.write_generated(300, tmp_path)
    database = tmp_path / "peer.db"
    peer = ROOT / "benchmarks" / "peers" / "sqlite_fts5.py"
    built = subprocess.run(
        [sys.executable, str(peer), "--data", str(data), "--db", str(database), "--build"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(built.stdout)["documents"] == 300
    lists = queries.corpus_queries("tiny", data, 50)
    requests = tmp_path / "requests.jsonl"
    values = [query["value"] for kind in ("term", "prefix") for query in lists[kind]]
    requests.write_text("".join(json.dumps(queries.query_request(v)) + "\n" for v in values))
    port = _free_port()
    argv = [sys.executable, str(peer), "--db", str(database), "--port", str(port)]
    server = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the peer did not start"
                time.sleep(0.05)
        common = ["--warmup", "0.2", "--duration", "0.5", "--server-pid", str(server.pid)]
        closed = _loadgen(port, requests, tmp_path / "closed.json", "--connections", "4", *common)
        opened = _loadgen(
            port, requests, tmp_path / "open.json", "--connections", "4", "--rate", "200", *common
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    engine = engines.Fts5Engine(database)
    for result in (closed, opened):
        assert result["errors"] == {}
        assert isinstance(result["answered"], int) and result["answered"] > 0
        samples = result["samples"]
        assert isinstance(samples, dict) and samples
        for index, body in samples.items():
            expected, total = engine.query(values[int(index)])
            assert engines.same_ranking(engines.reply_hits(body)[0], expected)
            assert body["total"] == total
    assert opened["mode"] == "open" and opened["unanswered_at_end"] == 0


def test_the_fts5_peer_finds_misspelt_words_after_the_words_as_typed(tmp_path: Path) -> None:
    # FTS5 has no typo tolerance; the peer expands a misspelt word itself
    # (as trio_search allows typos), so both servers answer the same query.
    from sqlite_fts5 import Fts5Index

    data = tmp_path / "data.jsonl"
    records = [
        {"key": "exact", "answer": "a rabit said so"},  # the word as typed
        {"key": "typo", "answer": "the white rabbit"},
        {"key": "other", "answer": "a hare"},
    ]
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    index, _count = Fts5Index.build(data)
    index.load_vocabulary()
    answer = index.query("rabit", limit=10)
    assert [hit["key"] for hit in answer["result"]] == ["exact", "typo"]
    assert answer["total"] == 2
    # Only when the words as typed do not fill the page, and not when asked.
    assert [hit["key"] for hit in index.query("rabit", limit=1)["result"]] == ["exact"]
    assert index.query("rabit", limit=1)["total"] == 1
    assert index.query("rabbbit", typos=False)["total"] == 0
    assert [hit["key"] for hit in index.query("rabbbit")["result"]] == ["typo"]
    # Several words, the misspelt one first or last.
    assert [hit["key"] for hit in index.query("rabbbit white")["result"]] == ["typo"]
    assert [hit["key"] for hit in index.query("white rabbbit")["result"]] == ["typo"]


def test_the_open_loop_target_is_judged_per_server_configuration() -> None:
    def run(p99: float) -> dict[str, object]:
        return {"latency_ms": {"p99": p99}, "unanswered_at_end": 0, "rate_offered": 1000}

    corpus = {
        "documents": 1_000_000,
        "runs": [],
        "floor": {},
        "build": {},
        "open_loop": {
            "trio_search": run(900.0),
            "trio_search, query cache off": run(5.0),
            "trio_search, 2 workers": run(8.0),
            "sqlite_fts5": run(1.0),
        },
    }
    rows = report.targets({"corpora": {"generated": corpus}})
    verdicts = {row["server"]: row["met"] for row in rows if row["target"] == "open_loop_p99"}
    assert verdicts == {"trio_search": False, "trio_search, 2 workers": True}


#: A stand-in server for the harness: listens where it is told, says so on
#: stderr, and waits to be stopped.
STAND_IN_SERVER = """
import socket, sys, time
port = int(sys.argv[sys.argv.index("--port") + 1])
print("stand-in listening", file=sys.stderr, flush=True)
listener = socket.create_server(("127.0.0.1", port))
time.sleep(60)
"""


def test_a_server_s_stderr_holds_only_this_run_s_lines(tmp_path: Path) -> None:
    import bench

    (tmp_path / "stand-in.stderr").write_text("a line from an earlier run\n")
    server = bench.ServerProcess("stand-in", [sys.executable, "-c", STAND_IN_SERVER], tmp_path)
    try:
        server.stop()
        server.start()  # a restart within the run keeps what the run wrote
    finally:
        server.stop()
    assert server.stderr().splitlines() == ["stand-in listening"] * 2
