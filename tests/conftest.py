"""Shared pytest wiring: the three tiers are folders, each marked by its conftest."""
