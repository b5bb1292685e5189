"""Suite-wide settings. Fixtures specific to one area live in that area's conftest.py."""
import os

from hypothesis import settings

# Hypothesis: deterministic in CI, modest example counts keep the suite within budget.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60)
settings.register_profile("dev", deadline=None, max_examples=40)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
