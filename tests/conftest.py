"""Shared fixtures: hypothesis profiles and a real server on port 0."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "default" keeps the suite fast; "fuzz" (nox -s fuzz) runs far more examples.
settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("TRIO_SEARCH_HYPOTHESIS_PROFILE", "default"))
