"""The one exception tree of mmgen.

Every error mmgen raises on purpose is an :class:`MmgenError`. Each knows the exit code the
command line maps it to and gives a one-line message that says what to do about it. Only
``mmgen/cli.py`` turns them into exit codes; nothing below it prints.

::

    MmgenError                      exit 2 unless noted
    ├── UsageError                  bad option values, missing API key, nothing to do
    ├── SpecError                   one or more job-file problems (``problems``: list of Problem)
    ├── StateError                  the out dir / outcome records cannot be used
    │   ├── LockedError             another runner holds the out dir's lock       (exit 75)
    │   ├── OutDirFullError         the out dir cannot take what a run writes     (exit 1)
    │   └── ClaimedError            another run claimed this job version          (exit 75)
    ├── ApiError                    MiniMax answered with a non-zero base_resp code  (exit 1)
    │   ├── AuthError               1004, 2049: the key is wrong or not allowed
    │   ├── BalanceError            1008: insufficient balance
    │   ├── QuotaError              2056: usage limit of the current window
    │   ├── RateLimitError          1002, 1039, 1041, 2045 (and HTTP 429): retryable
    │   ├── ContentError            1026, 1027: sensitive input or output
    │   ├── InvalidRequestError     2013, 1042: the request body was refused
    │   │   └── CallbackCheckError  2013 "fail to check callback url": no task was created
    │   └── ServerError             1000, 1001, 1013, 1024, 1033 (and HTTP 5xx): retryable
    ├── TransportError              network failure talking to the API               (exit 1)
    │   ├── ConnectFailedError      the connection could not even be made (nothing sent)
    │   └── AmbiguousSubmitError    the create call may or may not have reached MiniMax
    ├── NotSentError                a request still waiting when the run stopped submitting
    └── DownloadError               the video could not be fetched or was incomplete (exit 1)

Exit codes: 0 success, 1 a job (or the API) failed, 2 bad input or usage (nothing was done),
3 work pending (``plan --detailed-exitcode`` only), 75 another run holds the out dir or some
of its jobs (those were left to it; try again later: sysexits' EX_TEMPFAIL), 130 interrupted.

A job's failure is data (a record's ``error``), not an exception that ends the run; the run
itself stops early only on an *account-level* error (:func:`is_account_error`: a wrong key, an
empty balance, a spent quota), which every further create would repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PENDING = 3
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a job file, located at the offending value.

    ``line`` and ``column`` are 1-based; ``field`` is a dotted path such as
    ``jobs.0.subject_reference.0.image.0`` (empty for the document itself). ``severity`` is
    ``error`` (the file is invalid) or ``warning`` (advice: valid, unless ``validate --strict``).
    """

    file: str
    line: int
    column: int
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        field = self.field or "(document)"
        warning = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {field}: {warning}{self.message}"


class MmgenError(Exception):
    """Base class of every error mmgen raises on purpose."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message shown to a user: what happened, then what to do."""
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(MmgenError):
    """The command was called in a way that cannot work (bad option, missing API key...)."""


class SpecError(MmgenError):
    """Job files have problems; ``problems`` lists every one of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in job files")


class StateError(MmgenError):
    """The outcome records in the out dir cannot be read or written."""


class LockedError(StateError):
    """Another mmgen process holds the lock of the out dir: nothing was done, try later."""

    exit_code = EXIT_LOCKED


class OutDirFullError(StateError):
    """The out dir cannot take what a run writes (disk full, read-only, a file size limit):
    the run stops; what was recorded stays recorded."""

    exit_code = EXIT_FAILED


class ClaimedError(StateError):
    """Another run claimed this job version before its create (:mod:`mmgen.state.claims`):
    this run does not create it. ``task_id`` is the holder's task, when it has one."""

    exit_code = EXIT_LOCKED

    def __init__(self, job: str, holder: str, task_id: str | None = None) -> None:
        what = f"task {task_id}" if task_id else "no task id yet"
        super().__init__(
            f"{job}: claimed by {holder} ({what}); left to that run",
            hint=f"if that run is gone, `mmgen unlock {job}` clears the claim",
        )
        self.job = job
        self.holder = holder
        self.task_id = task_id


# --- talking to MiniMax ---------------------------------------------------------------------

#: What to tell a user for each documented base_resp code.
API_HINTS: dict[int, str] = {
    1000: "unknown error on MiniMax's side; try again later",
    1001: "MiniMax timed out; try again later",
    1002: "rate limited; lower --rpm or --concurrency",
    1004: "check MINIMAX_API_KEY and that it belongs to this account/region (MINIMAX_BASE_URL)",
    1008: "insufficient balance: top up the MiniMax account, then run again",
    1013: "MiniMax internal error; try again later",
    1024: "MiniMax internal error; try again later",
    1026: "the prompt or image was flagged as sensitive: change the job file",
    1027: "the generated video was flagged as sensitive: change the prompt or image",
    1033: "MiniMax system error; try again later",
    1039: "token limit reached; try again later",
    1041: "connection limit reached; lower --concurrency",
    1042: "the prompt has too many invisible characters: clean the job file",
    2013: "MiniMax refused the request parameters: run `mmgen validate` and check the job file",
    2045: "request rate grew too fast; lower --rpm",
    2049: "the API key is invalid: check MINIMAX_API_KEY",
    2056: "usage limit of the current 5-hour window reached: wait for it to reset",
}

RETRYABLE_CODES = frozenset({1000, 1001, 1002, 1013, 1024, 1033, 1039, 1041, 2045})
#: Codes that no retry can fix (whatever the HTTP status that came with them).
NEVER_RETRY_CODES = frozenset({1004, 1008, 1026, 1027, 1042, 2013, 2049, 2056})


class ApiError(MmgenError):
    """MiniMax answered with a non-zero ``base_resp.status_code`` (or an HTTP error status)."""

    exit_code = EXIT_FAILED

    def __init__(
        self,
        code: int,
        message: str,
        *,
        trace_id: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.status_msg = message
        self.trace_id = trace_id
        self.http_status = http_status
        self.retry_after = retry_after
        text = f"MiniMax error {code}: {message}"
        if trace_id:
            text += f" [trace {trace_id}]"
        super().__init__(text, hint=API_HINTS.get(code))

    @property
    def retryable(self) -> bool:
        """Worth retrying: a retryable code, or HTTP 429/5xx without a never-retry code."""
        if self.code in NEVER_RETRY_CODES:
            return False
        return self.code in RETRYABLE_CODES or (
            self.http_status is not None and (self.http_status == 429 or self.http_status >= 500)
        )


class AuthError(ApiError):
    """1004 / 2049: the API key is missing, wrong or not allowed."""


class BalanceError(ApiError):
    """1008: the account has no balance left."""


class QuotaError(ApiError):
    """2056: the usage limit of the current window is reached."""


class RateLimitError(ApiError):
    """1002, 1039, 1041, 2045 or HTTP 429: slow down and retry."""


class ContentError(ApiError):
    """1026 / 1027: sensitive content in the input or the generated video."""


class InvalidRequestError(ApiError):
    """2013 / 1042: the request body was refused."""


class ServerError(ApiError):
    """1000, 1001, 1013, 1024, 1033 or HTTP 5xx: MiniMax-side failure, retryable."""


_CODE_CLASSES: dict[int, type[ApiError]] = {
    1004: AuthError,
    2049: AuthError,
    1008: BalanceError,
    2056: QuotaError,
    1002: RateLimitError,
    1039: RateLimitError,
    1041: RateLimitError,
    2045: RateLimitError,
    1026: ContentError,
    1027: ContentError,
    2013: InvalidRequestError,
    1042: InvalidRequestError,
    1000: ServerError,
    1001: ServerError,
    1013: ServerError,
    1024: ServerError,
    1033: ServerError,
}


def api_error(
    code: int,
    message: str,
    *,
    trace_id: str | None = None,
    http_status: int | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the typed :class:`ApiError` for a ``base_resp`` code (or HTTP status)."""
    cls = _CODE_CLASSES.get(code)
    if cls is None and http_status is not None:
        if http_status == 429:
            cls = RateLimitError
        elif http_status >= 500:
            cls = ServerError
        elif http_status in (401, 403):
            cls = AuthError
    if code == 2013 and "callback" in message.lower():
        cls = CallbackCheckError
    return (cls or ApiError)(
        code, message, trace_id=trace_id, http_status=http_status, retry_after=retry_after
    )


class TransportError(MmgenError):
    """The network failed while talking to MiniMax (connect, read, protocol errors)."""

    exit_code = EXIT_FAILED


class AmbiguousSubmitError(TransportError):
    """The create call failed after it was sent: the task may or may not exist on MiniMax."""


class DownloadError(MmgenError):
    """The video could not be downloaded, or arrived incomplete.

    ``url_expired`` is true when the download URL answered 403, 404 or 410: it has most likely
    expired (MiniMax's URLs live one hour), so retrieve the file again for a fresh URL.
    ``http_status`` is the status of the download answer, when there was one.
    """

    exit_code = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        url_expired: bool = False,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.url_expired = url_expired
        self.http_status = http_status


class NotSentError(MmgenError):
    """A request that was still waiting (for the rate limiter, or between tries) when the run
    stopped submitting: it was never sent."""

    exit_code = EXIT_FAILED
    MESSAGE = "not sent: the run stopped submitting"

    def __init__(self, message: str = MESSAGE, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class ConnectFailedError(TransportError):
    """No connection to the API could be made (refused, DNS, connect timeout): the request
    was surely not sent, so even a create may be retried, and no budget was spent."""


class CallbackCheckError(InvalidRequestError):
    """The create was refused because MiniMax could not check the ``callback_url`` (it sends a
    challenge during the create and wants it echoed within 3 s). No task was created, so the
    request may be sent again, e.g. without ``callback_url``."""

    def __init__(self, code: int, message: str, **kwargs: Any) -> None:
        super().__init__(code, message, **kwargs)
        self.hint = (
            "MiniMax could not reach the callback listener in time: check --public-url "
            "(a tunnel or public host forwarding to --listen), or use --wait poll"
        )


def is_account_error(error: BaseException) -> bool:
    """An error every further call of this run would repeat: a wrong or unauthorised key, an
    empty balance, a spent usage window, or a server that cannot be reached at all."""
    return isinstance(error, AuthError | BalanceError | QuotaError | ConnectFailedError)


def is_transient(error: BaseException) -> bool:
    """Worth trying again later: a retryable API answer or a network failure, but never an
    ambiguous submit (trying that again could pay twice)."""
    if isinstance(error, AmbiguousSubmitError):
        return False
    if isinstance(error, TransportError):
        return True
    return isinstance(error, ApiError) and error.retryable
