"""Test-suite settings: Hypothesis profiles.

``default`` (used by README's test command and .ci/run) is derandomized: every run draws the
same examples, so a red CI is a real regression, not a new random draw. ``explore`` draws fresh
random examples, more of them: ``python -m pytest tests --hypothesis-profile=explore``.
"""

from hypothesis import settings

settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=300)
settings.load_profile("default")
