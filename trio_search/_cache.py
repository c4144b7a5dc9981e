"""Small caches that stay useful whatever clients send.

The hot path remembers a few things by their bytes: parsed headers, header
text, encoded replies. Each cache is bounded, and a full one is emptied
before the next entry goes in, rather than refusing new entries: a cache
filled early (by one client's junk, say) would otherwise serve nothing for
the rest of the process's life. Emptying costs one refill of what is in
use; entries are cheap to remake, and clearing is O(1) amortized.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V, limit: int) -> None:
    """Put ``key`` -> ``value`` in ``cache``, emptying it first if it holds
    ``limit`` entries already."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
