"""The pytest plugin (minimax_mock, minimax_respx), tested the way a user's project runs it.

Each test writes test files like an outside project would (no conftest: the plugin comes from
mmgen's ``pytest11`` entry point) and runs them with ``pytester``.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

INI = """
[pytest]
addopts = -p no:cacheprovider --strict-markers
filterwarnings = error
timeout = 60
"""

# What the outside tests share: a minimal client of the real API, as users write them.
CLIENT = '''
import os

import httpx

BODY = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
}


def api():
    """A client on MINIMAX_BASE_URL with MINIMAX_API_KEY, like production code."""
    return httpx.Client(
        base_url=os.environ.get("MINIMAX_BASE_URL", "https://api.minimax.io"),
        headers={"Authorization": "Bearer " + os.environ["MINIMAX_API_KEY"]},
        timeout=10,
    )


def create(http, **extra):
    body = http.post("/v1/video_generation", json={**BODY, **extra}).json()
    assert body["base_resp"]["status_code"] == 0, body
    return body["task_id"]


def create_with_retries(http, attempts=10):
    """Retries 1002 (rate limited), gives up on anything else."""
    for attempt in range(1, attempts + 1):
        body = http.post("/v1/video_generation", json=BODY).json()
        code = body["base_resp"]["status_code"]
        if code == 0:
            return body["task_id"], attempt
        assert code == 1002, body
    raise AssertionError("still rate limited")


def status(http, task_id):
    return http.get("/v1/query/video_generation", params={"task_id": task_id}).json()


def download(http, file_id):
    file = http.get("/v1/files/retrieve", params={"file_id": file_id}).json()["file"]
    return file["download_url"], httpx.get(file["download_url"], timeout=10).content
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """An outside project: an ini file and the client module its tests import."""
    pytester.makeini(INI)
    pytester.makepyfile(minimax_client=CLIENT)
    pytester.syspathinsert()
    return pytester


def readme_examples() -> dict[str, str]:
    """The test files shown in README's "Testing your own code against the mock"."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Testing your own code against the mock", 1)[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n# (test_\w+)\.py\n(.*?)```", section, flags=re.S)
    return dict(blocks)


def test_the_readme_examples_pass(pytester: pytest.Pytester) -> None:
    examples = readme_examples()
    assert set(examples) == {"test_client", "test_receiver"}
    pytester.makeini(INI)
    pytester.makepyfile(**examples)
    pytester.runpytest().assert_outcomes(passed=4)


def test_the_entry_point_is_registered() -> None:
    plugins = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert plugins.get("minimax_mock") == "mock_server.testing.pytest_plugin"


@pytest.mark.slow
def test_a_fresh_pytest_finds_the_plugin_with_no_conftest(project: pytest.Pytester) -> None:
    """The issue's client flow, in a separate pytest process: entry point, not conftest."""
    project.makepyfile(
        test_client_flow="""
        import os

        import pytest

        from minimax_client import api, create, download, status


        @pytest.mark.minimax_mock(generation_seconds=600)  # 60 s in Preparing: no race below
        def test_task_to_video(minimax_mock):
            assert os.environ["MINIMAX_BASE_URL"] == minimax_mock.url
            assert os.environ["MINIMAX_API_KEY"] == minimax_mock.api_key
            with api() as http:
                task_id = create(http)
                assert status(http, task_id)["status"] == "Preparing"

                minimax_mock.advance(minimax_mock.config.generation_seconds)

                done = status(http, task_id)
                assert done["status"] == "Success"
                url, video = download(http, done["file_id"])
            assert url.startswith(minimax_mock.cdn_url + "/")  # the download origin
            assert video[4:8] == b"ftyp"
            stats = minimax_mock.stats()
            assert (stats["created"], stats["Success"], stats["downloads"]) == (1, 1, 1)
            assert stats["downloads_with_authorization"] == 0
            assert [t["task_id"] for t in minimax_mock.tasks()] == [task_id]
            assert {r["endpoint"] for r in minimax_mock.requests()} == {
                "create", "query", "retrieve", "download"
            }
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_session_server_is_shared_reset_and_restored(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_shared="""
        import os

        import pytest

        from minimax_client import api, create

        URLS = []
        IDS = []


        def test_first(minimax_mock):
            URLS.append(minimax_mock.url)
            with api() as http:
                IDS.append(create(http))
            assert minimax_mock.stats()["created"] == 1
            assert minimax_mock.config.generation_seconds == 6


        @pytest.mark.minimax_mock(generation_seconds=1, api_key="another-key")
        def test_marker_applies_to_this_test_only(minimax_mock):
            URLS.append(minimax_mock.url)
            assert minimax_mock.tasks() == []
            assert minimax_mock.config.generation_seconds == 1
            assert os.environ["MINIMAX_API_KEY"] == minimax_mock.api_key == "another-key"
            with api() as http:
                IDS.append(create(http))


        def test_then_defaults_again(minimax_mock):
            URLS.append(minimax_mock.url)
            assert minimax_mock.tasks() == []
            assert minimax_mock.config.generation_seconds == 6
            assert minimax_mock.api_key != "another-key"
            assert len(set(URLS)) == 1  # one server for the session
            with api() as http:
                IDS.append(create(http))
            assert IDS == sorted(IDS, key=int) and len(set(IDS)) == 3  # never an id twice


        def test_environment_restored_without_the_fixture():
            assert os.environ["MINIMAX_BASE_URL"] == "https://user.example"
            assert os.environ["MINIMAX_API_KEY"] == "user-key"
        """
    )
    monkeypatch.setenv("MINIMAX_BASE_URL", "https://user.example")
    monkeypatch.setenv("MINIMAX_API_KEY", "user-key")
    result = project.runpytest()
    result.assert_outcomes(passed=4)


def test_suite_wide_defaults_come_from_a_fixture(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        import pytest


        @pytest.fixture(scope="session")
        def minimax_mock_defaults():
            return {"generation_seconds": 30, "api_key": None}
        """
    )
    project.makepyfile(
        test_defaults="""
        import pytest


        def test_defaults(minimax_mock):
            assert minimax_mock.config.generation_seconds == 30
            assert minimax_mock.config.api_key is None  # any key accepted


        @pytest.mark.minimax_mock(generation_seconds=2)
        def test_marker_over_defaults(minimax_mock):
            assert minimax_mock.config.generation_seconds == 2
            assert minimax_mock.config.api_key is None
        """
    )
    project.runpytest().assert_outcomes(passed=2)


def test_wrong_key_is_refused(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_key="""
        import httpx


        def test_key_checked(minimax_mock):
            body = httpx.post(
                minimax_mock.url + "/v1/video_generation",
                json={"model": "S2V-01", "prompt": "x"},
                headers={"Authorization": "Bearer not-the-key"},
            ).json()
            assert body["base_resp"]["status_code"] == 2049
        """
    )
    project.runpytest().assert_outcomes(passed=1)


def test_fault_on_create_and_a_retrying_client(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_retry="""
        import pytest

        from minimax_client import api, create_with_retries


        @pytest.mark.minimax_mock(faults={"rate_limit": {"probability": 0.6}})
        def test_retry_until_created(minimax_mock):
            with api() as http:
                task_id, attempts = create_with_retries(http)
            assert attempts > 1
            stats = minimax_mock.stats()
            assert stats["created"] == 1
            assert stats["errors"]["1002"] == attempts - 1


        def test_configure_mid_test(minimax_mock):
            minimax_mock.configure(faults={"rate_limit": {"probability": 1}})
            with api() as http:
                body = http.post("/v1/video_generation", json={"model": "S2V-01"}).json()
            assert body["base_resp"]["status_code"] == 1002


        def test_and_the_next_test_has_no_faults(minimax_mock):
            with api() as http:
                assert create_with_retries(http, attempts=1)
        """
    )
    project.runpytest().assert_outcomes(passed=3)


def test_a_bad_marker_is_one_clear_error(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_bad="""
        import pytest


        @pytest.mark.minimax_mock(generation_secs=1)
        def test_typo(minimax_mock):
            pass


        @pytest.mark.minimax_mock(faults={"rate_limit": {"probability": 2}})
        def test_out_of_range(minimax_mock):
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.minimax_mock: *generation_secs*",
            "@pytest.mark.minimax_mock: faults.rate_limit.probability: *",
        ]
    )
    output = result.stdout.str()
    assert "Traceback" not in output and "During handling" not in output
    assert "minimax_mock: @pytest" not in output  # the origin is named once


def test_callbacks_reach_a_receiver_and_follow_advance(project: pytest.Pytester) -> None:
    """The seed's receiver pattern (starlette here): echo the challenge, keep the pushes."""
    project.makepyfile(
        test_receiver="""
        import pytest
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from mmgen.serving import ServerThread
        from minimax_client import api, create, status

        received = []


        async def callback(request):
            data = await request.json()
            received.append(data)
            if "challenge" in data:
                return JSONResponse({"challenge": data["challenge"]})
            return JSONResponse({"status": "success"})


        @pytest.fixture
        def receiver_url():
            received.clear()
            app = Starlette(routes=[Route("/callback", callback, methods=["POST"])])
            with ServerThread(app) as server:
                yield server.url + "/callback"


        @pytest.mark.minimax_mock(generation_seconds=60)
        def test_challenge_then_success_push(minimax_mock, receiver_url):
            with api() as http:
                task_id = create(http, callback_url=receiver_url)
                minimax_mock.advance(60)
                # no waiting: advance() returns once the due callbacks were delivered
                assert "challenge" in received[0]
                pushed = [(m["task_id"], m["status"]) for m in received[1:]]
                assert pushed == [(task_id, "processing"), (task_id, "success")]
                assert received[-1]["file_id"] == status(http, task_id)["file_id"]
            journal = minimax_mock.task(task_id)["callbacks"]
            assert [d["result"] for d in journal] == ["ok", "ok", "ok"]
            assert minimax_mock.stats()["callbacks_delivered"] == 2
        """
    )
    project.runpytest().assert_outcomes(passed=1)


def test_respx_routes_the_real_origins_for_sync_and_async_clients(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_respx="""
        import os

        import httpx
        import pytest

        from minimax_client import BODY, create, download, status


        def test_plain_sync_client(minimax_respx, minimax_mock):
            assert os.environ["MINIMAX_BASE_URL"] == "https://api.minimax.io"
            key = {"Authorization": "Bearer " + os.environ["MINIMAX_API_KEY"]}
            with httpx.Client(base_url="https://api.minimax.io", headers=key) as http:
                task_id = create(http)
                minimax_mock.advance(6)
                done = status(http, task_id)
                assert done["status"] == "Success"
                url, video = download(http, done["file_id"])
            assert url.startswith(minimax_respx.cdn_origin + "/video/")
            assert video[4:8] == b"ftyp"
            assert minimax_mock.stats()["downloads"] == 1
            assert len(minimax_respx.router.calls) == 4


        def test_mainland_origin_too(minimax_respx):
            key = {"Authorization": "Bearer " + os.environ["MINIMAX_API_KEY"]}
            with httpx.Client(base_url="https://api.minimaxi.com", headers=key) as http:
                assert create(http)


        @pytest.mark.anyio
        async def test_async_client(minimax_respx):
            key = {"Authorization": "Bearer " + os.environ["MINIMAX_API_KEY"]}
            async with httpx.AsyncClient(base_url="https://api.minimax.io", headers=key) as http:
                body = (await http.post("/v1/video_generation", json=BODY)).json()
                task_id = body["task_id"]
                minimax_respx.mock.advance(6)
                query = "/v1/query/video_generation"
                done = (await http.get(query, params={"task_id": task_id})).json()
            assert done["status"] == "Success"


        def test_other_hosts_stay_unreachable(minimax_respx):
            with pytest.raises(AssertionError, match="not mocked"):
                httpx.get("https://example.com/")


        @pytest.mark.minimax_mock(faults={"drops": {"query": 1}})
        def test_a_dropped_connection_is_a_transport_error(minimax_respx):
            key = {"Authorization": "Bearer " + os.environ["MINIMAX_API_KEY"]}
            with httpx.Client(base_url="https://api.minimax.io", headers=key) as http:
                task_id = create(http)
                with pytest.raises(httpx.RemoteProtocolError):
                    status(http, task_id)


        @pytest.mark.anyio
        async def test_mmgen_client_with_the_production_url(minimax_respx, tmp_path):
            # mmgen's own client: routed like any httpx client
            from mmgen.api.client import MiniMaxClient

            async with MiniMaxClient(os.environ["MINIMAX_API_KEY"]) as client:
                assert client.base_url == "https://api.minimax.io"
                task_id = await client.create_task(BODY)
                await minimax_respx.mock.aadvance(6)
                done = await client.query_task(task_id)
                found = await client.retrieve_file(done.file_id)
                video = await client.download(found.download_url, tmp_path / "v.mp4")
            assert video.path.read_bytes()[4:8] == b"ftyp"
            assert [c.request.url.host for c in minimax_respx.router.calls] == [
                "api.minimax.io", "api.minimax.io", "api.minimax.io", "video-cdn.minimax.test"
            ]
        """
    )
    project.runpytest().assert_outcomes(passed=6)


def test_respx_routing_keeps_callbacks_and_inspection_working(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_respx_callbacks="""
        import asyncio
        import os
        import socket

        import httpx
        import pytest
        import respx
        import uvicorn
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from mmgen.serving import ServerThread
        from minimax_client import BODY, create

        received = []


        async def callback(request):
            data = await request.json()
            received.append(data)
            return JSONResponse({"challenge": data.get("challenge")})


        @pytest.mark.minimax_mock(generation_seconds=10)
        def test_callbacks_leave_through_real_sockets(minimax_respx):
            received.clear()
            app = Starlette(routes=[Route("/hook", callback, methods=["POST"])])
            key = {"Authorization": "Bearer " + os.environ["MINIMAX_API_KEY"]}
            with ServerThread(app) as receiver, httpx.Client(
                base_url="https://api.minimax.io", headers=key
            ) as http:
                task_id = create(http, callback_url=receiver.url + "/hook")
                minimax_respx.mock.advance(10)
            assert [m.get("status") for m in received] == [None, "processing", "success"]
            assert received[-1]["task_id"] == task_id


        def test_inspection_ignores_a_strict_respx_router_of_the_test(minimax_mock):
            with respx.mock(assert_all_mocked=True):
                assert minimax_mock.stats()["created"] == 0


        @pytest.mark.anyio
        @pytest.mark.minimax_mock(generation_seconds=30)
        async def test_a_receiver_in_the_test_loop_is_not_blocked(minimax_respx):
            received.clear()
            app = Starlette(routes=[Route("/hook", callback, methods=["POST"])])
            sock = socket.create_server(("127.0.0.1", 0))
            url = "http://127.0.0.1:%d/hook" % sock.getsockname()[1]
            server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                await asyncio.sleep(0.01)
            key = {"Authorization": "Bearer " + os.environ["MINIMAX_API_KEY"]}
            origin = "https://api.minimax.io"
            try:
                async with httpx.AsyncClient(base_url=origin, headers=key) as http:
                    body = {**BODY, "callback_url": url}
                    created = (await http.post("/v1/video_generation", json=body)).json()
                    assert created["base_resp"]["status_code"] == 0, created
                    await minimax_respx.mock.aadvance(30)
            finally:
                server.should_exit = True
                await serving
                sock.close()
            assert [m.get("status") for m in received] == [None, "processing", "success"]
        """
    )
    project.runpytest().assert_outcomes(passed=3)


def test_minimax_respx_without_respx_fails_clearly(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        import sys

        import pytest


        @pytest.fixture(autouse=True)
        def no_respx(monkeypatch):
            monkeypatch.setitem(sys.modules, "respx", None)
            monkeypatch.delitem(sys.modules, "mock_server.testing.respx_routing", raising=False)
        """
    )
    project.makepyfile(
        test_norespx="""
        def test_routed(minimax_respx):
            pass


        def test_mock_alone_still_works(minimax_mock):
            assert minimax_mock.stats()["created"] == 0
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*minimax_respx fixture needs respx: pip install respx*"])
    assert "During handling" not in result.stdout.str()


def test_the_package_imports_without_respx() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["respx"] = None
        import mock_server.testing.pytest_plugin, mock_server.testing.harness
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr
