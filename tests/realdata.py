"""Where the real archives are, and what happens when one is missing.

The archives live in ``../shared/data/`` beside the checkout. Without them the tests
that need them are skipped, with the reason; with ``SEGTIE_REQUIRE_DATA=1`` (set by
``.ci/run``) they fail instead, so CI can never pass by skipping the real data.
"""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REQUIRE_ENV = "SEGTIE_REQUIRE_DATA"


def require_file(path: Path, message: str) -> Path:
    """Return ``path`` if it is a file; else skip with ``message`` (or fail under
    ``SEGTIE_REQUIRE_DATA``, as in CI)."""
    if not path.is_file():
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(message + f" (${REQUIRE_ENV} is set)")
        pytest.skip(message)
    return path


def require_archive(path: Path) -> Path:
    """Return ``path`` if it is a file; else skip (or fail under ``SEGTIE_REQUIRE_DATA``)."""
    return require_file(path, f"Real archive not found at {path}; put {path.name} in "
                              f"{path.parent} to run this test")
