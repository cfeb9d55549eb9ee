"""The async MiniMax video client: create, query, retrieve and a streamed download.

Every failure becomes an error of :mod:`mmgen.errors`:

* ``base_resp.status_code != 0`` -> the typed :class:`~mmgen.errors.ApiError` of that code,
  carrying the message, the ``Trace-Id`` response header, the HTTP status and ``Retry-After``.
* a non-2xx HTTP status -> the error of the ``base_resp`` code in its body if there is one,
  otherwise by HTTP status (429 -> RateLimitError, 5xx -> ServerError, 401/403 -> AuthError);
  ``code`` is then the HTTP status itself.
* a body that is not a JSON object, or lacks the fields a call needs -> ServerError
  (code :data:`MALFORMED_RESPONSE`), or AmbiguousSubmitError for the create call.
* a network failure -> TransportError naming the endpoint.

Retries (tenacity: exponential backoff with full jitter, ``Retry-After`` wins when longer) happen
only for retryable codes, HTTP 429/5xx and network failures, and this client is the only owner
of the retries of one API call: callers that loop themselves (the runner's wait loop, its
download rounds) pass ``attempts=1`` or a small number, so retries never stack (see
:mod:`mmgen.run.runner` for the budget of one job). A connection that cannot even be made is tried
at most :data:`CONNECT_ATTEMPTS` times: an unreachable server is reported in seconds.

The create call spends money, so a network failure after the request may have reached
MiniMax (read timeout, connection dropped while waiting for the answer...) is never retried:
it raises AmbiguousSubmitError and the caller decides. Create is retried only when the request
surely was not processed: the connection was never made, or MiniMax answered with a retryable
error.

Connections: at most ``max_connections`` for API calls and ``max_downloads`` for the CDN (so a
slow transfer never starves queries), each an httpx client of one connection on httpx's own
transport, proxied or not (``HTTPS_PROXY`` and friends are honoured), lent first come, first
served (:class:`mmgen.connections.ConnectionPool`). A job that is only waiting holds nothing.

Was a create sent? Decided from httpx's exception type by :func:`never_sent`: the most specific
entry of :data:`NEVER_SENT` the error is an instance of, so the table's order cannot change a
decision (as httpx's own ``map_httpcore_exceptions``).

The API key goes only into the ``Authorization`` header of API calls. It never appears in an
error message, a log line or a repr, and it is never sent to the download URL (a CDN URL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from mmgen import DEFAULT_BASE_URL, __version__
from mmgen.api.download import DOWNLOAD_TIMEOUT, download_once, download_retryable
from mmgen.api.ratelimit import RateLimiter
from mmgen.api.responses import (
    TERMINAL_STATUSES,
    Download,
    FileInfo,
    TaskStatus,
    base_resp,
    id_or_none,
    non_negative_int,
    parse_retry_after,
    redact_url,
)
from mmgen.api.retries import RetryPolicy, unless_aborted
from mmgen.connections import ConnectionPool
from mmgen.errors import (
    API_HINTS,
    NEVER_RETRY_CODES,
    AmbiguousSubmitError,
    ConnectFailedError,
    MmgenError,
    RateLimitError,
    ServerError,
    TransportError,
    UsageError,
    api_error,
    is_transient,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "MALFORMED_RESPONSE",
    "NEVER_RETRY_CODES",
    "TERMINAL_STATUSES",
    "Download",
    "FileInfo",
    "MiniMaxClient",
    "RateLimiter",
    "RetryPolicy",
    "TaskStatus",
    "never_sent",
]

log = logging.getLogger(__name__)


#: ``ApiError.code`` of an answer whose body could not be understood.
MALFORMED_RESPONSE = -1


#: Bounded timeouts. httpx's read timeout applies to each network read, so for the streamed
#: download it is a per-chunk stall limit, not a limit on the whole transfer.
API_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=60.0, pool=60.0)

#: Keys shorter than this are not scrubbed from messages (no real key is that short).
MIN_SCRUB_LENGTH = 6

#: Most tries of one call whose connection could not be made at all (refused, DNS, timeout).
CONNECT_ATTEMPTS = 3

#: Calls (with their retries) under way at once. The connections bound the requests anyway;
#: when 10,000 tasks end together, the jobs past this wait holding a coroutine only, not a
#: call's retry state (bench/inflight.py: peak RSS).
CALLS_IN_FLIGHT = 256

#: Default pool sizes: API calls are short, so tens of connections serve thousands of jobs.
DEFAULT_MAX_CONNECTIONS = 48
DEFAULT_MAX_DOWNLOADS = 8

#: httpx's errors -> whether the request certainly never left (True) or may have reached the
#: server (False). Only a connection never made is "never sent": refused, DNS, connect timeout,
#: no pool slot in time, a scheme httpx cannot send, a proxy that refused the tunnel before the
#: request went through it, a URL that cannot be sent. Anything after the connection was made
#: (write or read errors and timeouts, a disconnect, a protocol error) is ambiguous, as is any
#: transport error not listed. Looked up by :func:`never_sent` (most specific class wins).
NEVER_SENT: dict[type[Exception], bool] = {
    httpx.TransportError: False,
    httpx.TimeoutException: False,
    httpx.NetworkError: False,
    httpx.ProtocolError: False,
    httpx.ConnectError: True,
    httpx.ConnectTimeout: True,
    httpx.PoolTimeout: True,
    httpx.UnsupportedProtocol: True,
    httpx.ProxyError: True,
    httpx.InvalidURL: True,
}

_HTTP_HINTS = {
    401: API_HINTS[2049],
    403: API_HINTS[1004],
    429: API_HINTS[1002],
}
_SERVER_HINT = "MiniMax server error; try again later"
_AMBIGUOUS_HINT = (
    "the task may exist on MiniMax and be billed; the job is recorded as unknown: "
    "rerun with --resubmit-unknown only if it did not appear"
)

T = TypeVar("T")


class MiniMaxClient:
    """Async client of the MiniMax video generation API.

    Use as ``async with MiniMaxClient(key) as client: ...`` or call :meth:`aclose`. An injected
    ``http`` client is not closed by :meth:`aclose` (its owner closes it).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_downloads: int = DEFAULT_MAX_DOWNLOADS,
        base_url_source: str = "MINIMAX_BASE_URL",
    ) -> None:
        key = api_key.strip()
        if not key:
            raise UsageError("no MiniMax API key", hint="set MINIMAX_API_KEY")
        if not key.isascii() or not key.isprintable():
            # httpx would put the bad header value into its exception text: refuse it here.
            raise UsageError(
                "the MiniMax API key contains characters a header cannot carry",
                hint="check MINIMAX_API_KEY for stray quotes, spaces or line breaks",
            )
        try:
            url = httpx.URL(base_url.rstrip("/"))
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise UsageError(
                f"invalid MiniMax base URL {base_url!r}",
                hint="use e.g. https://api.minimax.io (MINIMAX_BASE_URL or --base-url)",
            )
        self._api_key = key
        self.base_url = str(url)
        self.retry = retry or RetryPolicy()
        self.rate_limiter = rate_limiter
        self._sleep = sleep
        self.base_url_source = base_url_source
        self._owns_http = http is None
        # API calls and downloads (a CDN host) each get their own client, so a slow transfer
        # never holds a connection that status queries need. An injected client (tests)
        # serves both, behind the same gates.
        tls = httpx.create_ssl_context() if http is None else None  # one for every connection
        agent = {"User-Agent": f"mmgen/{__version__}"}
        self._api = ConnectionPool(
            max_connections, tls=tls, shared=http, timeout=API_TIMEOUT, headers=agent
        )
        self._calls = asyncio.Semaphore(CALLS_IN_FLIGHT)
        self._cdn = ConnectionPool(
            max_downloads, tls=tls, shared=http, timeout=DOWNLOAD_TIMEOUT, headers=agent
        )

    def __repr__(self) -> str:
        return f"MiniMaxClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()  # an injected client is its owner's to close
        await self._cdn.aclose()

    # --- the API calls ------------------------------------------------------------------------

    async def create_task(
        self,
        body: Mapping[str, Any],
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
        abort: asyncio.Event | None = None,
    ) -> str:
        """Submit a generation request; return its task id.

        ``before_send`` is awaited after the rate limiter let the request through and the
        connection gate gave it a slot, right before it leaves (on every try): the runner
        records "submitting" there, so a job that was still waiting for the limiter when the
        run stopped was never recorded as sent. An exception from it aborts the call (nothing
        sent). Once ``abort`` is set, a call waiting for the rate limiter or between tries
        stops with :class:`~mmgen.errors.NotSentError` at once.

        Raises AmbiguousSubmitError when the request may have reached MiniMax but no usable
        answer came back: the task may exist. Never retried in that case.
        """
        endpoint = "POST /v1/video_generation"

        async def attempt() -> str:
            limiter = self.rate_limiter
            slot = limiter.try_acquire() if limiter is not None else None  # no waiter tasks
            if limiter is not None and slot is None:
                slot = await unless_aborted(abort, limiter.acquire())
            sending = False

            async def leaving() -> None:
                nonlocal sending
                if before_send is not None:
                    await before_send()
                sending = True

            try:
                answer = await self._call(
                    "POST",
                    "/v1/video_generation",
                    json=dict(body),
                    submit=True,
                    before_send=leaving,
                )
            except RateLimitError as exc:
                if self.rate_limiter is not None:
                    self.rate_limiter.penalize(exc.retry_after or self.rate_limiter.interval)
                raise
            except BaseException as exc:
                # only a create that reached the server spends the per-minute budget: give the
                # slot back when the request never left (withdrawn, cancelled, no connection)
                if self.rate_limiter is not None and (
                    not sending or isinstance(exc, ConnectFailedError)
                ):
                    self.rate_limiter.refund(slot)  # this call's slot, not the newest
                raise
            task_id = id_or_none(answer.data.get("task_id"))
            if task_id is None:
                raise AmbiguousSubmitError(
                    f"{endpoint}: MiniMax reported success but gave no task_id",
                    hint=_AMBIGUOUS_HINT,
                )
            return task_id

        return await self._with_retries(
            attempt, self.retry.attempts, is_transient, endpoint, abort=abort
        )

    async def query_task(self, task_id: str, *, attempts: int | None = None) -> TaskStatus:
        """The current status of a task (``attempts``: tries in all, default the policy's)."""
        endpoint = "GET /v1/query/video_generation"

        async def attempt() -> TaskStatus:
            response = await self._call(
                "GET", "/v1/query/video_generation", params={"task_id": task_id}
            )
            try:
                return TaskStatus.from_payload(response.data, task_id)
            except ValueError:
                raise response.malformed("no task status in the answer") from None

        tries = attempts or self.retry.attempts
        return await self._with_retries(attempt, tries, is_transient, endpoint)

    async def retrieve_file(self, file_id: str, *, attempts: int | None = None) -> FileInfo:
        """The description and a fresh download URL of a generated file."""
        endpoint = "GET /v1/files/retrieve"

        async def attempt() -> FileInfo:
            response = await self._call("GET", "/v1/files/retrieve", params={"file_id": file_id})
            file = response.data.get("file")
            if not isinstance(file, Mapping):
                raise response.malformed("no 'file' object in the answer")
            url = file.get("download_url")
            if not isinstance(url, str) or not url.strip():
                raise response.malformed("no download_url in the answer")
            size = file.get("bytes")
            filename = file.get("filename")
            return FileInfo(
                file_id=id_or_none(file.get("file_id")) or file_id,
                bytes=non_negative_int(size),
                filename=filename if isinstance(filename, str) else "",
                download_url=url.strip(),
            )

        tries = attempts or self.retry.attempts
        return await self._with_retries(attempt, tries, is_transient, endpoint)

    async def download(
        self,
        url: str,
        dest: Path,
        *,
        progress: Callable[[int, int | None], None] | None = None,
        expected_bytes: int | None = None,
        attempts: int | None = None,
        then: Callable[[Path], None] | None = None,
    ) -> Download:
        """Stream ``url`` to ``dest`` atomically, hashing it on the way; never sends the API key.

        The body goes to a temp file next to ``dest`` that is fsync'd and renamed over ``dest``
        only when complete (byte count checked against Content-Length and ``expected_bytes``
        when that is > 0). Transient failures restart the download from the first byte.
        ``progress(done, total)`` is called as chunks arrive (``total`` None when unknown).
        ``then(dest)`` runs in the worker thread that committed the file, right after (e.g. to
        publish it under another name without a second thread hop); its errors are the call's.
        Raises DownloadError; its ``url_expired`` is true for 403/404/410.
        """
        dest = Path(dest)
        where = redact_url(url)

        async def attempt() -> Download:
            return await download_once(
                self._cdn.client, url, dest, where, progress, expected_bytes, then
            )

        tries = attempts or self.retry.download_attempts
        return await self._with_retries(attempt, tries, download_retryable, f"download {where}")

    # --- plumbing -----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        # a key too short to be real (tests, typos) would mangle every message it occurs in
        if len(self._api_key) < MIN_SCRUB_LENGTH:
            return text
        return text.replace(self._api_key, "***")

    async def _with_retries(
        self,
        op: Callable[[], Awaitable[T]],
        attempts: int,
        retryable: Callable[[BaseException], bool],
        what: str,
        *,
        abort: asyncio.Event | None = None,
    ) -> T:
        async with self._calls:  # a call waiting here holds no retry state yet
            return await self._retrying(op, attempts, retryable, what, abort=abort)

    async def _retrying(
        self,
        op: Callable[[], Awaitable[T]],
        attempts: int,
        retryable: Callable[[BaseException], bool],
        what: str,
        *,
        abort: asyncio.Event | None = None,
    ) -> T:
        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= attempts:
                return True
            error = state.outcome.exception() if state.outcome is not None else None
            return _not_connected(error) and state.attempt_number >= CONNECT_ATTEMPTS

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            seconds = state.upcoming_sleep
            text = error.one_line() if isinstance(error, MmgenError) else repr(error)
            log.warning(
                "%s failed (try %d of %d): %s; retrying in %.1f s",
                what,
                state.attempt_number,
                attempts,
                self._scrub(text),
                seconds,
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=self.retry.strategy(),
            retry=retry_if_exception(retryable),
            sleep=lambda seconds: unless_aborted(abort, self._sleep(seconds)),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            result: T = await retrying(op)
        except MmgenError as err:
            tries = retrying.statistics.get("attempt_number", 1)
            if tries > 1 and retryable(err):  # say once, at the end, that it was retried
                err.message += f" (gave up after {tries} tries)"
            raise
        return result

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: dict[str, Any] | None = None,
        submit: bool = False,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> _Answer:
        endpoint = f"{method} {path}"
        try:
            async with self._api.client() as http:
                if before_send is not None:  # a connection is ours: the request leaves now
                    await before_send()
                response = await http.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=json,
                    headers={"Authorization": f"Bearer {self._api_key}"},
                    timeout=API_TIMEOUT,
                )
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
            not_sent = never_sent(exc)
            if submit and not not_sent:
                raise AmbiguousSubmitError(
                    f"{endpoint} at {self.base_url}: {detail} after the request was sent",
                    hint=_AMBIGUOUS_HINT,
                ) from exc
            if not_sent:
                raise ConnectFailedError(
                    f"cannot connect to {self.base_url} ({detail})",
                    hint=f"check the network and {self.base_url_source}",
                ) from exc
            raise TransportError(
                f"{endpoint} at {self.base_url}: {detail}",
                hint=f"check the network and {self.base_url_source}",
            ) from exc
        return self._check(response, endpoint, submit)

    def _check(self, response: httpx.Response, endpoint: str, submit: bool) -> _Answer:
        status = response.status_code
        trace_id = response.headers.get("Trace-Id") or None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            data = response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            data = None
        if not isinstance(data, dict):
            data = None
        code, message = base_resp(data)

        if not 200 <= status < 300:
            if code:
                raise api_error(
                    code,
                    self._scrub(message or f"HTTP {status}"),
                    trace_id=trace_id,
                    http_status=status,
                    retry_after=retry_after,
                )
            text = f"HTTP {status} {response.reason_phrase} from {endpoint}".rstrip()
            if message:
                text += f": {self._scrub(message)}"
            if submit and status >= 500:
                # not MiniMax's own answer (no base_resp): a gateway's page. The backend may
                # well have created the task (504: the gateway gave up waiting for it)
                raise AmbiguousSubmitError(
                    f"{text} after the request was sent", hint=_AMBIGUOUS_HINT
                )
            error = api_error(
                status, text, trace_id=trace_id, http_status=status, retry_after=retry_after
            )
            if error.hint is None:
                error.hint = _HTTP_HINTS.get(status, _SERVER_HINT if status >= 500 else None)
            raise error

        answer = _Answer(data or {}, endpoint, status, trace_id)
        if data is None:
            what = "a body that is not a JSON object"
            if submit:
                raise AmbiguousSubmitError(
                    f"{endpoint}: MiniMax answered HTTP {status} with {what}", hint=_AMBIGUOUS_HINT
                )
            raise answer.malformed(what)
        if code is None and "base_resp" in data:
            raise answer.malformed("an unreadable base_resp")
        if code:
            raise api_error(
                code,
                self._scrub(message or "(no message)"),
                trace_id=trace_id,
                http_status=status,
                retry_after=retry_after,
            )
        return answer


@dataclass(frozen=True)
class _Answer:
    """A successful (base_resp 0) JSON answer of an API call."""

    data: dict[str, Any]
    endpoint: str
    http_status: int
    trace_id: str | None

    def malformed(self, what: str) -> ServerError:
        return ServerError(
            MALFORMED_RESPONSE,
            f"{self.endpoint}: MiniMax answered HTTP {self.http_status} with {what}",
            trace_id=self.trace_id,
            http_status=self.http_status,
        )


def never_sent(error: BaseException) -> bool:
    """Whether an httpx error means the request certainly never left (see :data:`NEVER_SENT`):
    the most specific class of the table that ``error`` is an instance of decides; an error
    the table does not know may have been sent."""
    decided: type[Exception] | None = None
    for kind in NEVER_SENT:
        if isinstance(error, kind) and (decided is None or issubclass(kind, decided)):
            decided = kind
    return decided is not None and NEVER_SENT[decided]


def _not_connected(error: BaseException | None) -> bool:
    return isinstance(error, ConnectFailedError)
