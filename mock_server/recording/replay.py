"""``mmgen mock --replay FILE``: serve a recording offline.

Matching: a request is matched on method, path, query (``GroupId`` ignored, values
unquoted, sorted) and body (JSON canonicalised, ``callback_url`` left out, since the receiver's
address changes between runs); see :func:`mock_server.recording.format.request_key`. Task and
file ids are the recorded ones, so queries and retrieves match on the ids the replayed creates
handed out.

Repeats: the answers recorded for one request are served in their recorded order, then the
last one again for ever (a poll that asks more often than the recording did keeps getting the
final status). A query never goes back in time: answers recorded before the last callback the
replay has pushed for that task are skipped (after a replayed ``success`` push, the confirming
query gets the answer recorded after it, not an earlier ``Processing``).

Callbacks: a replayed create whose body has a ``callback_url`` first sends the challenge to it,
synchronously, before answering, like the real API (the recorded challenge, or a fresh one when
the recording has none); a receiver that does not echo it within 3 s fails the create with
``base_resp`` 2013 "invalid params, fail to check callback url". Then the recorded status
pushes are POSTed in order, each after its recorded delay capped at ``max_callback_gap``.

A request that is not in the recording gets HTTP 404 with ``base_resp`` 2013 and a message
naming what was not matched. Every request and callback is listed in the journal,
``GET /_replay/journal`` (``{"recording", "unmatched", "entries": [...]}``), and unmatched
requests are logged as warnings. ``POST /_replay/reset`` starts every sequence over (a second
run against the same replay server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from mock_server.recording.format import (
    Recording,
    load_recording,
    normalized_query,
    parse_json,
    request_key,
)
from mock_server.recording.recorder import CREATE_PATH, DOWNLOAD_PREFIX, HOP_BY_HOP

log = logging.getLogger("mock_server.replay")

CHALLENGE_TIMEOUT = 3.0
CALLBACK_TIMEOUT = 10.0
JOURNAL_LIMIT = 10_000
FAIL_CHALLENGE = "invalid params, fail to check callback url"
#: Headers the replay's own server sets (not replayed, or they would come twice).
SERVER_HEADERS = frozenset({"date", "server"})


class Replay:
    """The replay's handlers and state (``app.state.replay``)."""

    def __init__(self, recording: Recording, *, max_callback_gap: float = 1.0) -> None:
        self.recording = recording
        self.max_callback_gap = max_callback_gap
        self.journal: deque[dict[str, Any]] = deque(maxlen=JOURNAL_LIMIT)
        self.unmatched = 0
        self._cursors: Counter[str] = Counter()
        self._download_cursors: Counter[str] = Counter()
        self._marks: dict[str, float] = {}  # task_id -> recorded `at` of the last push replayed
        self._file_of_download: dict[str, str] = {}
        for exchanges in recording.exchanges.values():
            for exchange in exchanges:
                if isinstance(info := exchange.get("download"), dict):
                    self._file_of_download[str(info.get("id"))] = str(info.get("file_id"))
        self._pushes: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._started = time.monotonic()
        for warning in recording.warnings:
            self._log("warning", message=warning)

    def _log(self, kind: str, **entry: Any) -> None:
        self.journal.append(
            {"at": round(time.monotonic() - self._started, 3), "kind": kind, **entry}
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        pushes = list(self._pushes)
        for push in pushes:
            push.cancel()
        if pushes:
            await asyncio.gather(*pushes, return_exceptions=True)
        if self._http is not None:
            client, self._http = self._http, None
            await client.aclose()

    # --- API requests ---------------------------------------------------------------------

    async def serve(self, request: Request) -> Response:
        raw = await request.body()
        path = request.url.path
        query = list(request.query_params.multi_items())
        key = request_key(request.method, path, query, raw)
        candidates = self.recording.exchanges.get(key)
        if not candidates:
            return self._unmatched(request, path, query, raw, key)
        index = self._cursors[key]
        task_id = dict(query).get("task_id", "").strip().strip('"')
        mark = self._marks.get(task_id) if task_id else None
        if mark is not None:  # never answer with what was recorded before a replayed push
            while index < len(candidates) - 1 and float(candidates[index]["at"]) < mark:
                index += 1
        self._cursors[key] = index + 1
        exchange = candidates[min(index, len(candidates) - 1)]
        entry = {
            "method": request.method,
            "path": path,
            "query": normalized_query(query),
            "matched": True,
            "recorded_seq": exchange.get("seq"),
            "answer": f"{min(index, len(candidates) - 1) + 1} of {len(candidates)}",
        }
        if request.method == "POST" and path.rstrip("/") == CREATE_PATH:
            body = parse_json(raw)
            receiver = body.get("callback_url") if isinstance(body, dict) else None
            if isinstance(receiver, str) and receiver.strip() and exchange.get("task_id"):
                if not await self._challenge(exchange, receiver, entry):
                    if self._cursors[key] == index + 1:  # nothing was created: give it back
                        self._cursors[key] = index
                    self._log("request", **entry, result=FAIL_CHALLENGE)
                    return JSONResponse(
                        {
                            "task_id": "",
                            "base_resp": {"status_code": 2013, "status_msg": FAIL_CHALLENGE},
                        }
                    )
                self._push_later(exchange, receiver)
        self._log("request", **entry)
        return self._answer(request, exchange)

    def _answer(self, request: Request, exchange: dict[str, Any]) -> Response:
        response = exchange["response"]
        headers = {
            name: value
            for name, value in (response.get("headers") or {}).items()
            if name not in HOP_BY_HOP | SERVER_HEADERS and value != "REDACTED"
        }
        if "body" in response:
            body = response["body"]
            download = exchange.get("download")
            if isinstance(download, dict) and isinstance(body, dict):
                file = body.get("file")
                if isinstance(file, dict):
                    base = str(request.base_url).rstrip("/")
                    body = {
                        **body,
                        "file": {
                            **file,
                            "download_url": f"{base}{DOWNLOAD_PREFIX}/{download['id']}",
                        },
                    }
            content = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        else:
            content = str(response.get("text", "")).encode("utf-8", "surrogatepass")
        return Response(content, int(response["status"]), headers=headers)

    def _unmatched(
        self, request: Request, path: str, query: list[tuple[str, str]], raw: bytes, key: str
    ) -> Response:
        params = "&".join(f"{k}={v}" for k, v in normalized_query(query))
        what = f"{request.method} {path}{'?' + params if params else ''}"
        if raw.strip():
            body = parse_json(raw)
            prompt = body.get("prompt") if isinstance(body, dict) else None
            what += " with a body that was not recorded"
            if isinstance(prompt, str):
                what += f" (prompt {prompt[:60]!r})"
        recorded = self.recording.endpoints.get(f"{request.method} {path}", 0)
        message = (
            f"replay: no recorded answer for {what}; {self.recording.path.name} holds "
            f"{recorded} other request(s) to {request.method} {path}"
        )
        self.unmatched += 1
        self._log(
            "request",
            method=request.method,
            path=path,
            query=normalized_query(query),
            matched=False,
            key=key,
            message=message,
        )
        log.warning("%s", message)
        body_out: dict[str, Any] = {"task_id": ""} if path.rstrip("/") == CREATE_PATH else {}
        body_out["base_resp"] = {"status_code": 2013, "status_msg": message}
        return JSONResponse(body_out, 404)

    # --- callbacks ------------------------------------------------------------------------

    def _recorded_callbacks(self, exchange: dict[str, Any]) -> list[dict[str, Any]]:
        info = exchange.get("callback")
        if not isinstance(info, dict):
            return []
        return list(self.recording.callbacks.get(str(info.get("token")), []))

    async def _challenge(
        self, exchange: dict[str, Any], receiver: str, entry: dict[str, Any]
    ) -> bool:
        recorded = [c for c in self._recorded_callbacks(exchange) if c.get("challenge")]
        payload = recorded[0].get("payload") if recorded else None
        if not isinstance(payload, dict) or not payload.get("challenge"):
            payload = {"challenge": secrets.token_urlsafe(24)}
        result = await self._post(receiver, payload, CHALLENGE_TIMEOUT)
        if result[0] == "ok":
            try:
                echo = json.loads(result[1]).get("challenge")
            except (ValueError, AttributeError):
                echo = None
            if echo != payload["challenge"]:
                result = ("wrong echo", result[1])
        entry["challenge"] = result[0]
        return result[0] == "ok"

    def _push_later(self, exchange: dict[str, Any], receiver: str) -> None:
        pushes = [c for c in self._recorded_callbacks(exchange) if not c.get("challenge")]
        if not pushes:
            return
        answered_at = float(exchange["at"]) + float(exchange.get("elapsed_ms") or 0) / 1000
        job = asyncio.get_running_loop().create_task(
            self._push(str(exchange["task_id"]), receiver, pushes, answered_at)
        )
        self._pushes.add(job)
        job.add_done_callback(self._pushes.discard)

    async def _push(
        self, task_id: str, receiver: str, pushes: list[dict[str, Any]], since: float
    ) -> None:
        for push in pushes:
            at = float(push["at"])
            await asyncio.sleep(min(max(at - since, 0.0), self.max_callback_gap))
            since = at
            payload = push.get("payload")
            if not isinstance(payload, dict):
                continue
            self._marks[task_id] = max(self._marks.get(task_id, at), at)
            result, _ = await self._post(receiver, payload, CALLBACK_TIMEOUT)
            self._log(
                "callback",
                task_id=task_id,
                status=payload.get("status"),
                recorded_seq=push.get("seq"),
                result=result,
            )

    async def _post(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[str, str]:
        try:
            response = await self._client().post(url, json=payload, timeout=timeout)
        except httpx.TimeoutException:
            return "timeout", ""
        except httpx.HTTPError as err:
            return f"error: {type(err).__name__}: {err}"[:200], ""
        if not 200 <= response.status_code < 300:
            return f"http {response.status_code}", response.text
        return "ok", response.text

    # --- downloads ------------------------------------------------------------------------

    async def download(self, request: Request) -> Response:
        download_id = request.path_params["download_id"]
        events = [
            e for e in self.recording.downloads.get(download_id, []) if e.get("complete", True)
        ]
        event: dict[str, Any] | None = None
        if events:
            index = min(self._download_cursors[download_id], len(events) - 1)
            self._download_cursors[download_id] += 1
            event = events[index]
        else:  # retrieved but never downloaded under this id: the same file's video will do
            file_id = self._file_of_download.get(download_id)
            videos = self.recording.videos_by_file.get(file_id or "", [])
            event = videos[-1] if videos else None
        if event is None:
            message = f"replay: download {download_id} was never fetched while recording"
            self.unmatched += 1
            self._log("download", id=download_id, matched=False, message=message)
            log.warning("%s", message)
            return JSONResponse({"replay_error": message}, 404)
        self._log("download", id=download_id, matched=True, recorded_seq=event.get("seq"))
        headers = dict(event.get("headers") or {})
        if event.get("video") is not None:
            return FileResponse(
                self.recording.video_path(event),
                media_type=headers.get("content-type", "video/mp4"),
                headers={"etag": headers["etag"]} if "etag" in headers else None,
            )
        headers.pop("content-length", None)
        content = str(event.get("text", event.get("error", ""))).encode()
        return Response(content, int(event.get("status") or 502), headers=headers)

    async def reset(self, request: Request) -> Response:
        """Start over: every answer sequence from its first answer, pushes stopped, journal kept."""
        for push in list(self._pushes):
            push.cancel()
        self._cursors.clear()
        self._download_cursors.clear()
        self._marks.clear()
        self._log("reset")
        return JSONResponse({"reset": True})

    async def inspect_journal(self, request: Request) -> Response:
        return JSONResponse(
            {
                "recording": str(self.recording.path),
                "unmatched": self.unmatched,
                "entries": list(self.journal),
            }
        )


def create_replay_app(path: Path | Recording, *, max_callback_gap: float = 1.0) -> Starlette:
    """A starlette app serving the recording at ``path`` (UsageError if it cannot be used).

    ``max_callback_gap`` caps each wait between replayed callbacks (seconds). State at
    ``app.state.replay``.
    """
    recording = path if isinstance(path, Recording) else load_recording(Path(path))
    replay = Replay(recording, max_callback_gap=max_callback_gap)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await replay.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    routes = [
        Route("/_replay/journal", replay.inspect_journal, methods=["GET"]),
        Route("/_replay/reset", replay.reset, methods=["POST"]),
        Route(DOWNLOAD_PREFIX + "/{download_id:str}", replay.download, methods=["GET", "HEAD"]),
        Route("/{path:path}", replay.serve, methods=methods),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.replay = replay
    return app
