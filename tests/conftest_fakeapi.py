"""Pytest plugin: the ``fake_api`` fixture, a started :class:`tests.fakeapi.FakeAPI`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakeapi import FakeAPI


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    """A fake OpenAI-compatible + BFL server on 127.0.0.1, stopped after the test.

    Proxies configured in the environment are bypassed for it, so requests
    stay on this machine.
    """
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeAPI() as api:
        yield api
