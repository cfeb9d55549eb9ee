"""Shared fixtures: real servers on loopback (port 0), the bundled mock among them.

The mock fixtures are thin layers over mmgen's own pytest plugin
(:mod:`mock_server.testing.pytest_plugin`, loaded through its ``pytest11`` entry point, as in
any project that installs mmgen), so the suite exercises what users get:

- ``serve_app``: factory fixture, ``url = serve_app(app)`` serves any ASGI app with
  :class:`mmgen.serving.ServerThread` until the test ends.
- ``start_mock``: factory fixture, ``mock = start_mock(MockConfig(...), clock=None)`` starts a
  fresh mock of its own and returns a :class:`MockHandle` (``mock.base_url``, ``mock.stats()``,
  ``mock.tasks()``...); every mock it started is stopped at teardown.
- ``mock_api``: a :class:`MockHandle` of one mock shared by the session
  (``generation_seconds=0.2``, no faults, any key), reset before each test: cheap.
- ``manual_clock``: a :class:`mock_server.ManualClock` to inject with ``start_mock(..., clock=)``.
- the plugin's own: ``minimax_mock``, ``minimax_respx``, the ``minimax_mock`` marker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from mmgen.api.client import MiniMaxClient
from mmgen.serving import ServerThread
from mock_server import ManualClock, MockConfig
from mock_server.clock import Clock
from mock_server.testing.harness import MinimaxMock, MockService
from tests.client_support import BASE, KEY, TLS, policy
from tests.fakes import Sleeps

# No test may look for cloud credentials on the network (the AWS credential chain ends at the
# instance metadata address): dummy keys for every test and every process a test starts; the
# object-store tests set their own, for moto's server on loopback.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "test-no-credentials",
    "AWS_SECRET_ACCESS_KEY": "test-no-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}.items():
    os.environ.setdefault(_name, _value)

pytest_plugins = ["pytester"]

#: A handle on a served mock: the plugin's (``base_url``, ``stats()``, ``tasks()``, ``task()``,
#: ``requests()``, ``reset()``, ``wait_for()``, ``client()``, ``app``, ``advance()``).
MockHandle = MinimaxMock

#: Task duration of the shared ``mock_api`` (seconds): quick, yet long enough to poll.
MOCK_API_GENERATION_SECONDS = 0.2


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    """Factory: ``url = serve_app(app)`` serves an ASGI app until the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(ServerThread(app, name="test-server")).url


@pytest.fixture
def start_mock() -> Iterator[Callable[..., MockHandle]]:
    """Factory: ``start_mock(config=None, *, clock=None) -> MockHandle``, a fresh mock."""
    with contextlib.ExitStack() as stack:

        def start(config: MockConfig | None = None, *, clock: Clock | None = None) -> MockHandle:
            service = stack.enter_context(MockService(config, clock=clock))
            return service.activate()

        yield start


@pytest.fixture(scope="session")
def _shared_mock() -> Iterator[MockService]:
    with MockService(MockConfig(generation_seconds=MOCK_API_GENERATION_SECONDS)) as service:
        yield service


@pytest.fixture
def mock_api(_shared_mock: MockService) -> MockHandle:
    """The session's default mock (0.2 s tasks, no faults, any key), reset for this test."""
    return _shared_mock.activate()


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that only moves on ``advance()``; inject with ``start_mock(config, clock=...)``."""
    return ManualClock()


@pytest.fixture
def anyio_backend() -> str:
    """The event loop of the suite's async tests (the mock and mmgen use asyncio)."""
    return "asyncio"


# --- the MiniMaxClient tests' fixtures (constants and builders: tests/client_support.py) ---


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def router() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False, using="httpx") as mock:
        yield mock


@pytest.fixture
async def client(router: Any, sleeps: Sleeps) -> AsyncIterator[MiniMaxClient]:
    async with (
        httpx.AsyncClient(verify=TLS) as http,
        MiniMaxClient(KEY, BASE, http=http, retry=policy(), sleep=sleeps) as c,
    ):
        yield c


# --- a real S3-compatible server on loopback (moto's server mode) ---------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port) for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


#: Credentials the object-store tests use (moto accepts any); the secret must never be shown.
S3_SECRET = "s3-test-secret-Zq8vX1"


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty bucket; the standard AWS environment points at moto. Returns
    ``s3://<bucket>/team`` (an out dir under a prefix)."""
    import uuid

    import boto3

    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    name = f"mmgen-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}/team"
