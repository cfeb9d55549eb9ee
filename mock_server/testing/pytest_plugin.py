"""pytest plugin: the MiniMax mock as fixtures, for testing your own code offline.

Installed with mmgen and registered through the ``pytest11`` entry point: no conftest needed.

Fixtures:

- ``minimax_mock``: a :class:`~mock_server.testing.harness.MinimaxMock`, the mock served on
  127.0.0.1 (port 0): ``.url``, ``.api_key``, ``.tasks()``, ``.stats()``, ``.requests()``,
  ``.configure(**options)``, ``.advance(seconds)`` (the task clock jumps ahead, no sleeping; due
  callbacks are delivered before it returns). While it is active ``MINIMAX_BASE_URL`` and
  ``MINIMAX_API_KEY`` point at it. One server serves the whole session; every test starts
  from an empty mock.
- ``minimax_respx``: routes ``https://api.minimax.io`` and ``https://api.minimaxi.com`` to the
  same mock in-process with respx (sync and async httpx clients), sets ``MINIMAX_BASE_URL`` to
  the real origin; returns a :class:`~mock_server.testing.respx_routing.MinimaxRoutes`
  (``.mock`` is the ``minimax_mock`` handle). Needs respx.
- ``minimax_mock_defaults`` (session): the options every test starts from; override it in a
  conftest to change them for a whole suite.

Marker: ``@pytest.mark.minimax_mock(**options)`` for one test (or a class or module):
the keys of ``mmgen mock --config`` (``generation_seconds``, ``api_key``, ``seed``, ``faults``...),
laid over the defaults; nearer markers win.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from mock_server.config import MockConfigError, config_from_dict
from mock_server.testing.harness import MinimaxMock, MockService, merge_options

if TYPE_CHECKING:
    from mock_server.testing.respx_routing import MinimaxRoutes

#: The key the plugin's mock requires (in MINIMAX_API_KEY while ``minimax_mock`` is active).
DEFAULT_API_KEY = "mock-minimax-api-key"

#: What every test's mock starts from (then ``minimax_mock_defaults``, then markers): the mock's
#: own defaults (6 s tasks, no faults), a required key and a fixed seed, so faults given as
#: probabilities play out the same on every run.
DEFAULT_OPTIONS: dict[str, Any] = {"api_key": DEFAULT_API_KEY, "seed": 0}

MARKER = "minimax_mock"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options of the MiniMax mock for this test (generation_seconds, "
        "api_key, seed, faults={...}: the keys of `mmgen mock --config`)",
    )


def _usage_failure(err: MockConfigError, label: str) -> BaseException:
    """A one-line test failure (no traceback) naming where the bad option came from."""
    message = err.message
    if not message.startswith(label):
        message = f"{label}: {message.removeprefix('(top level): ')}"
    return pytest.fail.Exception(message, pytrace=False)


@pytest.fixture(scope="session")
def minimax_mock_defaults() -> dict[str, Any]:
    """The mock options of the whole session (override this fixture to change them)."""
    return dict(DEFAULT_OPTIONS)


@pytest.fixture(scope="session")
def minimax_mock_service(minimax_mock_defaults: dict[str, Any]) -> Iterator[MockService]:
    """The session's mock server (one thread, one port, the app swapped per test)."""
    label = "minimax_mock_defaults"
    try:
        config = config_from_dict(
            merge_options(DEFAULT_OPTIONS, minimax_mock_defaults), source=label
        )
    except MockConfigError as err:
        raise _usage_failure(err, label) from None
    with MockService(config, cdn=True) as service:
        yield service


def marker_options(node: pytest.Item) -> dict[str, Any]:
    """The ``minimax_mock`` markers' options of a test, nearest last (so they win)."""
    options: dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers(MARKER))):
        if mark.args:
            pytest.fail(
                f"@pytest.mark.{MARKER} takes keyword options only, e.g. "
                f"@pytest.mark.{MARKER}(generation_seconds=1)",
                pytrace=False,
            )
        options = merge_options(options, mark.kwargs)
    return options


@pytest.fixture
def minimax_mock(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    minimax_mock_service: MockService,
) -> Iterator[MinimaxMock]:
    """The MiniMax mock for this test, empty, with this test's marker options."""
    options = marker_options(request.node)
    label = f"@pytest.mark.{MARKER}"
    try:
        mock = minimax_mock_service.activate(options, source=label)
    except MockConfigError as err:
        raise _usage_failure(err, label) from None
    monkeypatch.setenv("MINIMAX_BASE_URL", mock.url)
    monkeypatch.setenv("MINIMAX_API_KEY", mock.api_key)
    try:
        yield mock
    finally:
        minimax_mock_service.restore()


@pytest.fixture
def minimax_respx(
    minimax_mock: MinimaxMock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MinimaxRoutes]:
    """MiniMax's real origins routed to ``minimax_mock`` in-process (httpx, via respx)."""
    try:
        from mock_server.testing.respx_routing import MinimaxRoutes
    except ImportError as err:
        if err.name != "respx":
            raise
        raise pytest.fail.Exception(
            "the minimax_respx fixture needs respx: pip install respx (or use minimax_mock, "
            "which serves the mock on a local port)",
            pytrace=False,
        ) from None
    with MinimaxRoutes(minimax_mock) as routes:
        monkeypatch.setenv("MINIMAX_BASE_URL", routes.base_url)
        yield routes
