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
:mod:`mmgen.runner` for the budget of one job). A connection that cannot even be made is tried
at most :data:`CONNECT_ATTEMPTS` times: an unreachable server is reported in seconds.

The create call spends money, so a network failure after the request may have reached
MiniMax (read timeout, connection dropped while waiting for the answer...) is never retried:
it raises AmbiguousSubmitError and the caller decides. Create is retried only when the request
surely was not processed: the connection was never made, or MiniMax answered with a retryable
error.

Connections: the number of jobs in flight never sets the size of httpcore's pool or the length of
its queue (its scheduling costs O(connections x queued requests), encode/httpx#3215). API calls
go through a small pool (``max_connections``, tens) behind this client's own FIFO gate (an
``asyncio.Semaphore`` of the same size), so httpcore never sees more requests than connections;
downloads use their own pool and gate (``max_downloads``), so a slow CDN never starves queries.
A job that is only waiting holds nothing.

The API key goes only into the ``Authorization`` header of API calls. It never appears in an
error message, a log line or a repr, and it is never sent to the download URL (a CDN URL).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import math
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from mmgen import __version__
from mmgen.errors import (
    API_HINTS,
    NEVER_RETRY_CODES,
    AmbiguousSubmitError,
    ApiError,
    ConnectFailedError,
    DownloadError,
    MmgenError,
    RateLimitError,
    ServerError,
    TransportError,
    UsageError,
    api_error,
    is_transient,
)
from mmgen.files import commit
from mmgen.ratelimit import RateLimiter

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
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.minimax.io"

#: ``ApiError.code`` of an answer whose body could not be understood.
MALFORMED_RESPONSE = -1

#: Codes that ask to back off harder (connection limit, rate growth limit).
SLOW_CODES = frozenset({1041, 2045})

#: Bounded timeouts. httpx's read timeout applies to each network read, so for the streamed
#: download it is a per-chunk stall limit, not a limit on the whole transfer.
API_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=60.0, pool=60.0)
DOWNLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=60.0)

#: Most tries of one call whose connection could not be made at all (refused, DNS, timeout).
CONNECT_ATTEMPTS = 3

#: Default pool sizes: API calls are short, so tens of connections serve thousands of jobs.
DEFAULT_MAX_CONNECTIONS = 16
DEFAULT_MAX_DOWNLOADS = 8

#: Network failures after which a create request surely did not reach MiniMax.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)

#: The statuses after which a task changes no more.
TERMINAL_STATUSES = frozenset({"Success", "Fail"})

_STATUSES = {
    "preparing": "Preparing",
    "queueing": "Queueing",
    "queued": "Queueing",
    "processing": "Processing",
    "success": "Success",
    "succeeded": "Success",
    "fail": "Fail",
    "failed": "Fail",
}

_HTTP_HINTS = {
    401: API_HINTS[2049],
    403: API_HINTS[1004],
    429: API_HINTS[1002],
}
_SERVER_HINT = "MiniMax server error; try again later"
_EXPIRED_HINT = "download URLs live one hour: retrieve the file again for a fresh URL"
_AMBIGUOUS_HINT = (
    "the task may exist on MiniMax and be billed; the job is recorded as unknown: "
    "rerun with --resubmit-unknown only if it did not appear"
)

_CHUNK = 1 << 16
T = TypeVar("T")


@dataclass(frozen=True)
class TaskStatus:
    """The state of a generation task, as the query endpoint (or a callback) reports it."""

    task_id: str
    #: "Preparing", "Queueing", "Processing", "Success" or "Fail"; unknown values are kept as-is.
    status: str
    file_id: str | None
    width: int | None
    height: int | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_payload(cls, data: Mapping[str, Any], task_id: str | None = None) -> TaskStatus:
        """Build from a query response or a callback body (status compared case-insensitively).

        Raises ``ValueError`` when there is no usable task id or status.
        """
        raw_id = _id_or_none(data.get("task_id")) or task_id
        status = data.get("status")
        if not raw_id or not isinstance(status, str) or not status.strip():
            raise ValueError("no task_id or status")
        return cls(
            task_id=raw_id,
            status=normalize_status(status),
            file_id=_id_or_none(data.get("file_id")),
            width=_dimension(data.get("video_width")),
            height=_dimension(data.get("video_height")),
        )


@dataclass(frozen=True)
class FileInfo:
    """A generated file as the retrieve endpoint describes it."""

    file_id: str
    #: Size announced by MiniMax; may be 0 (unknown).
    bytes: int
    filename: str
    #: A CDN URL valid for about an hour; fetch it without the API key.
    download_url: str

    def __repr__(self) -> str:  # the URL is a bearer credential for an hour: keep it out of logs
        return (
            f"FileInfo(file_id={self.file_id!r}, bytes={self.bytes}, "
            f"filename={self.filename!r}, download_url={_redact_url(self.download_url)!r})"
        )


@dataclass(frozen=True)
class Download:
    """A file written completely and atomically to ``path``."""

    path: Path
    sha256: str
    bytes: int


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries retryable failures.

    The wait before retry *n* (1-based) is drawn uniformly from
    ``[0, min(max_wait, initial_wait * multiplier ** (n - 1))]`` ("full jitter"; the upper bound
    itself when ``jitter`` is false), times ``slow_factor`` for codes 1041/2045 (capped at
    ``max_wait * slow_factor``). A ``Retry-After`` header wins when it asks for longer, up to
    ``max_retry_after``.
    """

    #: Tries in total per API call (1 = no retry).
    attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 30.0
    multiplier: float = 2.0
    slow_factor: float = 3.0
    max_retry_after: float = 120.0
    #: Tries in total per download (each one restarts from the first byte).
    download_attempts: int = 3
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.download_attempts < 1:
            raise ValueError("attempts and download_attempts must be at least 1")
        if min(self.initial_wait, self.max_wait, self.max_retry_after) < 0:
            raise ValueError("waits must not be negative")
        if self.multiplier < 1 or self.slow_factor < 1:
            raise ValueError("multiplier and slow_factor must be at least 1")

    def wait(self, retry_number: int, error: BaseException | None = None) -> float:
        """Seconds to sleep before retry ``retry_number`` (1 = the first retry) after ``error``."""
        return _PolicyWait(self)._seconds(retry_number, error)

    def strategy(self) -> wait_base:
        """This policy as a tenacity wait strategy."""
        return _PolicyWait(self)


class _PolicyWait(wait_base):
    """tenacity's full-jitter exponential wait (``wait_random_exponential``), slowed for codes
    1041/2045, and never shorter than a ``Retry-After`` the server asked for."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._jittered = wait_random_exponential(
            multiplier=policy.initial_wait, max=policy.max_wait, exp_base=policy.multiplier
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        return self._seconds(retry_state.attempt_number, error, retry_state)

    def _seconds(
        self, retry_number: int, error: BaseException | None, state: RetryCallState | None = None
    ) -> float:
        policy = self.policy
        if policy.jitter:
            if state is None:
                state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
                state.attempt_number = retry_number
            wait = float(self._jittered(state))
        else:
            exponent = min(retry_number - 1, 64)
            wait = min(policy.max_wait, policy.initial_wait * policy.multiplier**exponent)
        if isinstance(error, ApiError) and error.code in SLOW_CODES:
            wait *= policy.slow_factor
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > wait:
            wait = min(float(retry_after), policy.max_retry_after)
        return wait


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
        self._http = http or _pool(max_connections, API_TIMEOUT)
        # Downloads go to a CDN host: their own pool, so a slow transfer never holds a slot
        # that status queries need (an injected client, as in tests, serves both).
        self._cdn = http or _pool(max_downloads, DOWNLOAD_TIMEOUT)
        self._gate = asyncio.Semaphore(max(1, max_connections))
        self._download_gate = asyncio.Semaphore(max(1, max_downloads))

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
        if self._owns_http:
            await self._http.aclose()
            await self._cdn.aclose()

    # --- the API calls ------------------------------------------------------------------------

    async def create_task(
        self,
        body: Mapping[str, Any],
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """Submit a generation request; return its task id.

        ``before_send`` is awaited after the rate limiter let the request through and the
        connection gate gave it a slot, right before it leaves (on every try): the runner
        records "submitting" there, so a job that was still waiting for the limiter when the
        run stopped was never recorded as sent. An exception from it aborts the call (nothing
        sent).

        Raises AmbiguousSubmitError when the request may have reached MiniMax but no usable
        answer came back: the task may exist. Never retried in that case.
        """
        endpoint = "POST /v1/video_generation"

        async def attempt() -> str:
            if self.rate_limiter is not None:
                await self.rate_limiter.acquire()
            try:
                answer = await self._call(
                    "POST",
                    "/v1/video_generation",
                    json=dict(body),
                    submit=True,
                    before_send=before_send,
                )
            except RateLimitError as exc:
                if self.rate_limiter is not None:
                    self.rate_limiter.penalize(exc.retry_after or self.rate_limiter.interval)
                raise
            except TransportError as exc:
                # only a create that reached the server spends the per-minute budget
                if self.rate_limiter is not None and not isinstance(exc, AmbiguousSubmitError):
                    self.rate_limiter.refund()
                raise
            task_id = _id_or_none(answer.data.get("task_id"))
            if task_id is None:
                raise AmbiguousSubmitError(
                    f"{endpoint}: MiniMax reported success but gave no task_id",
                    hint=_AMBIGUOUS_HINT,
                )
            return task_id

        return await self._with_retries(attempt, self.retry.attempts, is_transient, endpoint)

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
                file_id=_id_or_none(file.get("file_id")) or file_id,
                bytes=_non_negative_int(size),
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
    ) -> Download:
        """Stream ``url`` to ``dest`` atomically, hashing it on the way; never sends the API key.

        The body goes to a temp file next to ``dest`` that is fsync'd and renamed over ``dest``
        only when complete (byte count checked against Content-Length and ``expected_bytes``
        when that is > 0). Transient failures restart the download from the first byte.
        ``progress(done, total)`` is called as chunks arrive (``total`` None when unknown).
        Raises DownloadError; its ``url_expired`` is true for 403/404/410.
        """
        dest = Path(dest)
        where = _redact_url(url)

        async def attempt() -> Download:
            async with self._download_gate:
                return await self._download_once(url, dest, where, progress, expected_bytes)

        tries = attempts or self.retry.download_attempts
        return await self._with_retries(attempt, tries, _download_retryable, f"download {where}")

    # --- plumbing -----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***")

    async def _with_retries(
        self,
        op: Callable[[], Awaitable[T]],
        attempts: int,
        retryable: Callable[[BaseException], bool],
        what: str,
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
            sleep=self._sleep,
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
            async with self._gate:
                if before_send is not None:  # a connection slot is ours: the request leaves now
                    await before_send()
                response = await self._http.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=json,
                    headers={"Authorization": f"Bearer {self._api_key}"},
                    timeout=API_TIMEOUT,
                )
        except httpx.TransportError as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
            if submit and not isinstance(exc, _NOT_SENT):
                raise AmbiguousSubmitError(
                    f"{endpoint} at {self.base_url}: {detail} after the request was sent",
                    hint=_AMBIGUOUS_HINT,
                ) from exc
            if isinstance(exc, _NOT_SENT):
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
        retry_after = _parse_retry_after(response.headers.get("Retry-After"))
        try:
            data = response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            data = None
        if not isinstance(data, dict):
            data = None
        code, message = _base_resp(data)

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
            if submit and status == 504:
                # a gateway gave up waiting: the backend may well have created the task
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

    async def _download_once(
        self,
        url: str,
        dest: Path,
        where: str,
        progress: Callable[[int, int | None], None] | None,
        expected_bytes: int | None,
    ) -> Download:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise DownloadError(f"invalid download URL {where}: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise DownloadError(f"invalid download URL {where}: not an absolute http(s) URL")
        request = self._cdn.build_request("GET", parsed, timeout=DOWNLOAD_TIMEOUT)
        # The CDN URL must never see the API key, even if the http client carries one by default.
        request.headers.pop("Authorization", None)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp_path: Path | None = None
        try:
            with tempfile.NamedTemporaryFile(
                dir=dest.parent, delete=False, prefix=f".{dest.name}.", suffix=".part"
            ) as tmp:
                tmp_path = Path(tmp.name)
                digest, size = await self._stream_to(request, tmp, where, progress, expected_bytes)
            await asyncio.to_thread(commit, tmp_path, dest)
            tmp_path = None
            return Download(path=dest, sha256=digest, bytes=size)
        finally:
            if tmp_path is not None:  # anything went wrong, cancellation included
                tmp_path.unlink(missing_ok=True)

    async def _stream_to(
        self,
        request: httpx.Request,
        out: IO[bytes],
        where: str,
        progress: Callable[[int, int | None], None] | None,
        expected_bytes: int | None,
    ) -> tuple[str, int]:
        try:
            response = await self._cdn.send(request, stream=True, follow_redirects=True)
        except httpx.TransportError as exc:
            raise DownloadError(f"download {where}: {type(exc).__name__}: {exc}") from exc
        try:
            status = response.status_code
            if status in (403, 404, 410):
                raise DownloadError(
                    f"download {where}: HTTP {status}, the URL has likely expired",
                    hint=_EXPIRED_HINT,
                    url_expired=True,
                    http_status=status,
                )
            if status != 200:
                raise DownloadError(
                    f"download {where}: HTTP {status} {response.reason_phrase}".rstrip(),
                    http_status=status,
                )
            length = _content_length(response)
            expected = expected_bytes if expected_bytes and expected_bytes > 0 else None
            encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
            total = expected if expected is not None else (None if encoded else length)
            hasher = hashlib.sha256()
            written = 0
            try:
                async for chunk in response.aiter_bytes(_CHUNK):
                    out.write(chunk)
                    hasher.update(chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(written, total)
            except httpx.TransportError as exc:
                raise DownloadError(
                    f"download {where}: broken off after {written} bytes "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            # Content-Length counts the bytes on the wire (before any content decoding).
            if length is not None and response.num_bytes_downloaded != length:
                raise DownloadError(
                    f"download {where}: incomplete, {response.num_bytes_downloaded} of "
                    f"{length} bytes (Content-Length)"
                )
            if expected is not None and written != expected:
                raise DownloadError(
                    f"download {where}: got {written} bytes, MiniMax announced {expected}"
                )
            if written == 0:
                raise DownloadError(f"download {where}: empty body")
            out.flush()
            return hasher.hexdigest(), written
        finally:
            await response.aclose()


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


def normalize_status(status: str) -> str:
    """``"success"``/``"SUCCESS"`` -> ``"Success"``, ``"failed"`` -> ``"Fail"``; unknown kept."""
    return _STATUSES.get(status.strip().lower(), status)


def _pool(size: int, timeout: httpx.Timeout) -> httpx.AsyncClient:
    size = max(1, size)
    return httpx.AsyncClient(
        timeout=timeout,
        headers={"User-Agent": f"mmgen/{__version__}"},
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
    )


def _not_connected(error: BaseException | None) -> bool:
    return isinstance(error, ConnectFailedError)


def _download_retryable(error: BaseException) -> bool:
    if not isinstance(error, DownloadError) or error.url_expired:
        return False
    status = error.http_status
    return status is None or status == 429 or status >= 500


def _base_resp(data: Mapping[str, Any] | None) -> tuple[int | None, str]:
    """``(status_code, status_msg)`` of a body; code None when absent or unreadable."""
    if data is None:
        return None, ""
    base = data.get("base_resp")
    if not isinstance(base, Mapping):
        return None, ""
    raw = base.get("status_code")
    message = base.get("status_msg")
    message = message if isinstance(message, str) else ""
    if isinstance(raw, bool):
        return None, message
    if isinstance(raw, int):
        return raw, message
    if isinstance(raw, str):
        try:
            return int(raw.strip()), message
        except ValueError:
            return None, message
    return None, message


def _id_or_none(value: Any) -> str | None:
    """Task and file ids come as strings or as int64: always give a non-empty str or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value else None
    if isinstance(value, str):
        return value.strip() or None
    return None


def _dimension(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0


def _content_length(response: httpx.Response) -> int | None:
    raw = response.headers.get("Content-Length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _redact_url(url: str) -> str:
    """The URL without its query string (download URLs carry signatures there)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(invalid URL)"
    if not parsed.host:
        return "(invalid URL)"
    return f"{parsed.scheme}://{parsed.host}{parsed.path}"
