"""Fixtures for the bring-your-own-model tests: the CLI tests' isolated home."""

from tests.cli.conftest import home  # noqa: F401  (fixture)
