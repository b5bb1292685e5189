"""Suite-wide settings. Fixtures specific to one area live in that area's conftest.py."""
import os
from pathlib import Path

from hypothesis import settings

# Hypothesis: deterministic in CI, modest example counts keep the suite within budget.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60)
settings.register_profile("dev", deadline=None, max_examples=40)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def strategies_folder(base: Path, monkeypatch) -> Path:
    """An empty strategies folder under ``base`` that the strategy registry reads (through the
    ``HINDSIGHT_STRATEGIES`` setting, as a user's folder is)."""
    path = base / "strategies"
    path.mkdir()
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(path))
    return path
