"""Shared pytest wiring: the three tiers are folders, each marked by its conftest."""

# pytester: to test the skip allowlist itself (tests/unit/test_skip_allowlist.py).
pytest_plugins = ["pytester", "tests.skip_allowlist"]
