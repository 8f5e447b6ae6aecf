"""Shared fixtures: re-exported from plugin modules so every test file can use them."""

from __future__ import annotations

from tests.conftest_fakeapi import fake_api  # noqa: F401 - a fixture, found by name
from tests.conftest_wheel import built_wheel  # noqa: F401 - a fixture, found by name
