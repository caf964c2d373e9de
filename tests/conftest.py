"""Shared test configuration: Hypothesis profiles.

``default`` (used unless HYPOTHESIS_PROFILE says otherwise; ``ci``, the same
derandomized, when the CI variable is set) keeps the whole suite fast; ``thorough`` multiplies the example counts for a long local run::

    HYPOTHESIS_PROFILE=thorough python -m pytest tests

Tests that set ``max_examples`` themselves scale it with :func:`examples`.
"""

import os

from hypothesis import HealthCheck, settings

_FACTOR = {"default": 1.0, "ci": 1.0, "thorough": 10.0, "quick": 0.3}

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("thorough", parent=settings.get_profile("default"))
settings.register_profile("quick", parent=settings.get_profile("default"))

# CI (CI=true) runs derandomized, so that a red run is reproducible.
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
settings.load_profile(PROFILE)


def examples(n):
    """``n`` scaled by the active profile (at least 1)."""
    return max(1, int(round(n * _FACTOR.get(PROFILE, 1.0))))
