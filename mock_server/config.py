"""The mock's configuration: timing, auth, video format and every injectable fault.

A config file is YAML or JSON whose keys are the field names below (nested groups as nested
mappings); every key is optional, unknown keys are refused (usually a typo). Example::

    generation_seconds: 6        # time from create to Success/Fail, on the mock's clock
    generation_jitter: 1         # +/- seconds, drawn per task
    api_key: null                # null: any well-formed Bearer key is accepted
    seed: 42                     # same seed, same faults (per decision stream)
    download_url_ttl: 3600
    challenge_mode: sync         # sync (as MiniMax) or async (task first, challenge after)
    report_file_bytes: false     # false: file.bytes is 0, as MiniMax answers
    state_dir: null              # a folder: tasks survive a restart of the mock
    video: {fps: 10, min_bytes: 0}   # size follows the request's resolution and duration
    faults:
      rate_limit: {probability: 0.1, rpm: 20, endpoints: [create]}
      server_errors: {create: 0.05, query: 0.05, status: 503}
      drops: {query: 0.02, create_commits: true}
      codes: [{code: 2056, probability: 0.01, endpoints: [create]}]
      tasks: {fail_probability: 0.1, slow_probability: 0.1, slow_factor: 4}
      sensitive: {input_words: [violence], output_words: [explosion], output_probability: 0.05}
      balance: {max_tasks: 100}
      callbacks: {drop: 0.1, duplicate: 0.1, reorder: 0.1, delay: 0.1, delay_seconds: 5}
      challenge: {probability: 0.1, mode: reject}
      downloads: {slow_probability: 0.1, bytes_per_second: 50000, truncate_probability: 0.05,
                  truncate_mode: abort, expired_probability: 0.05}

Probabilities are in ``[0, 1]`` and apply per request (or per task / per callback, as noted).
``schemas/mock_config.json`` (printed by ``mmgen mock --print-config-schema``) describes every
key (with its default and meaning) and is what
config files are validated against; the dataclasses below mirror it for typed access.
"""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from mmgen.errors import Problem, UsageError
from mmgen.schemas import (
    DocumentKind,
    Positions,
    load_document,
    schema_problems,
    strict_validator,
)

CONFIG_SCHEMA = "mock_config.json"
ENDPOINTS = ("create", "query", "retrieve", "download")
API_ENDPOINTS = ("create", "query", "retrieve")


class MockConfigError(UsageError):
    """The mock's config file (or a value given for it) cannot be used.

    ``problems``: each problem of a config file, located (``str(problem)`` is
    ``FILE:LINE:COL: FIELD: message``); the message joins them on one line.
    """

    def __init__(
        self, message: str, *, hint: str | None = None, problems: list[Problem] | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


@dataclass
class EndpointRates:
    """A probability per endpoint: ``create``, ``query``, ``retrieve``, ``download``."""

    create: float = 0.0
    query: float = 0.0
    retrieve: float = 0.0
    download: float = 0.0

    def rate(self, endpoint: str) -> float:
        return float(getattr(self, endpoint, 0.0))


@dataclass
class ServerErrorFaults(EndpointRates):
    """HTTP 5xx answers (an nginx HTML page, no JSON) with these probabilities per request.

    ``create_commits``: the failed create still created the task (the client cannot know: the
    ambiguous submit that must not be resubmitted blindly).
    """

    status: int = 503
    create_commits: bool = False


@dataclass
class DropFaults(EndpointRates):
    """Dropped connections: the status line and headers go out, then the connection closes
    without the body (clients see a protocol error). ``create_commits`` as for server errors."""

    create_commits: bool = False


@dataclass
class RateLimitFaults:
    """Code 1002 on ``endpoints``: at random (``probability``) and beyond an RPM budget.

    ``rpm``: at most this many requests to those endpoints in any 60 s of the mock's clock.
    Every request that passes authentication counts, also when it is refused afterwards
    (invalid params, sensitive input, balance, a failed callback check), as the real API counts
    requests; a request refused with 1002 itself does not (it was not admitted).
    ``http_status`` 200 (as MiniMax usually does) or 429;
    ``retry_after``: a ``Retry-After`` header value in seconds, when set.
    """

    probability: float = 0.0
    rpm: int | None = None
    endpoints: list[str] = field(default_factory=lambda: ["create"])
    http_status: int = 200
    retry_after: int | None = None


@dataclass
class CodeFault:
    """Any base_resp ``code`` (e.g. 1000, 1013, 1039, 1041, 1042, 2045, 2056), at random."""

    code: int
    probability: float = 1.0
    endpoints: list[str] = field(default_factory=lambda: ["create"])
    message: str | None = None
    http_status: int = 200


@dataclass
class TaskFaults:
    """Per task: end in ``Fail`` (with base_resp ``fail_code``, 0 by default), or take
    ``slow_factor`` times longer than ``generation_seconds``."""

    fail_probability: float = 0.0
    fail_code: int = 0
    slow_probability: float = 0.0
    slow_factor: float = 5.0


@dataclass
class SensitiveFaults:
    """1026 at create for prompts containing any of ``input_words`` (case-insensitive) or at
    random; 1027 for generated videos: the task ends in ``Fail`` with base_resp 1027 when its
    prompt contains any of ``output_words``, or at random per task."""

    input_words: list[str] = field(default_factory=list)
    input_probability: float = 0.0
    output_words: list[str] = field(default_factory=list)
    output_probability: float = 0.0


@dataclass
class BalanceFaults:
    """1008 (insufficient balance) for every create once ``max_tasks`` tasks exist."""

    max_tasks: int | None = None


@dataclass
class CallbackFaults:
    """Per status-update callback: not sent (``drop``), sent twice (``duplicate``), held back
    until after the next update (``reorder``), or sent ``delay_seconds`` late (``delay``)."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 5.0


@dataclass
class ChallengeFaults:
    """Per create with a callback_url, a broken callback check with this probability. ``mode``:

    - ``reject``: the challenge is sent, the echo is judged wrong;
    - ``malformed``: the challenge POST has no ``challenge`` value;
    - ``skip``: no check at all: the task is created and its updates are sent anyway.

    With ``challenge_mode: sync`` a failed check refuses the create (2013 "invalid params, fail
    to check callback url", no task); with ``async`` the task exists and gets no updates.
    """

    probability: float = 0.0
    mode: str = "reject"


@dataclass
class DownloadFaults:
    """Per download request: ``slow`` (``bytes_per_second``), ``truncate`` (``abort``: the
    connection closes after ``truncate_fraction`` of the body, short of its Content-Length;
    ``short``: a complete-looking response with only that fraction of the file), ``expired``
    (the signed URL is answered 403 as if its hour were over)."""

    slow_probability: float = 0.0
    bytes_per_second: float = 65536.0
    truncate_probability: float = 0.0
    truncate_mode: str = "abort"
    truncate_fraction: float = 0.5
    expired_probability: float = 0.0


@dataclass
class Faults:
    """Every fault group; all off by default."""

    rate_limit: RateLimitFaults = field(default_factory=RateLimitFaults)
    server_errors: ServerErrorFaults = field(default_factory=ServerErrorFaults)
    drops: DropFaults = field(default_factory=DropFaults)
    codes: list[CodeFault] = field(default_factory=list)
    tasks: TaskFaults = field(default_factory=TaskFaults)
    sensitive: SensitiveFaults = field(default_factory=SensitiveFaults)
    balance: BalanceFaults = field(default_factory=BalanceFaults)
    callbacks: CallbackFaults = field(default_factory=CallbackFaults)
    challenge: ChallengeFaults = field(default_factory=ChallengeFaults)
    downloads: DownloadFaults = field(default_factory=DownloadFaults)


@dataclass
class VideoOptions:
    """The generated MP4. Its size follows the request (``resolution``: 512P 912x512, 720P
    1280x720, 768P 1366x768, 1080P 1920x1080, the 01 models' default 720P, Hailuo's 768P;
    ``duration`` 6 or 10, default 6) unless ``width``/``height``/``seconds`` force one. The
    query's video_width/height report the file's real size. ``min_bytes`` pads each file with
    an MP4 ``free`` box to at least that size, streamed (for download benchmarks)."""

    width: int | None = None
    height: int | None = None
    fps: int = 10
    seconds: float | None = None
    min_bytes: int = 0


@dataclass
class MockConfig:
    """Everything the mock can be told.

    - ``generation_seconds`` (6): create to terminal status, on the clock (10 % Preparing,
      20 % Queueing, 70 % Processing); short by default so rehearsals are quick.
    - ``generation_jitter`` (0): +/- seconds drawn per task (seeded).
    - ``api_key`` (None): when set, other Bearer keys get 2049; when None any key is accepted.
      Tasks belong to the key that created them (others cannot query them), as on MiniMax.
    - ``seed`` (None: random, reported by ``GET /_mock/config``): makes every fault decision,
      id, jitter and challenge reproducible.
    - ``download_url_ttl`` (3600): seconds a download URL stays valid.
    - ``challenge_mode`` (``sync``): when the callback check happens (see
      :class:`ChallengeFaults`); ``challenge_timeout`` (3): seconds the receiver has to echo it.
    - ``callback_timeout`` (5), ``callback_retries`` (0) and ``callback_retry_delay`` (1 s):
      per status-update POST (MiniMax's own retry policy is not documented).
    - ``callback_concurrency`` (32): callback POSTs in flight at once (a fixed pool of workers).
    - ``report_file_bytes`` (False): the retrieve's ``file.bytes`` is 0, as MiniMax answers;
      true reports the real size.
    - ``state_dir`` (None): keep tasks and id counters in this folder (see
      :mod:`mock_server.persistence`) so a restarted mock still knows them.
    """

    generation_seconds: float = 6.0
    generation_jitter: float = 0.0
    api_key: str | None = None
    seed: int | None = None
    download_url_ttl: float = 3600.0
    challenge_mode: str = "sync"
    challenge_timeout: float = 3.0
    callback_timeout: float = 5.0
    callback_retries: int = 0
    callback_retry_delay: float = 1.0
    callback_concurrency: int = 32
    report_file_bytes: bool = False
    state_dir: str | Path | None = None
    video: VideoOptions = field(default_factory=VideoOptions)
    faults: Faults = field(default_factory=Faults)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.state_dir is not None:
            data["state_dir"] = str(self.state_dir)
        return data

    def validate(self) -> MockConfig:
        """Check this config against ``schemas/mock_config.json``; raises
        :class:`MockConfigError` naming every field at fault."""
        problems = data_problems(self.to_dict())
        if problems:
            raise MockConfigError("invalid mock config: " + "; ".join(problems))
        return self


def data_problems(data: Any) -> list[str]:
    """``FIELD: message`` for each way plain data breaks the schema (none: valid)."""
    found = schema_problems("", data, Positions(), strict_validator(CONFIG_SCHEMA))
    return [f"{p.field or '(top level)'}: {p.message}" for p in found] + _non_finite(data)


def _non_finite(data: Any, field: str = "") -> list[str]:
    """NaN and infinity, which pass every ``minimum``/``maximum`` of the schema."""
    if isinstance(data, float) and not math.isfinite(data):
        return [f"{field or '(top level)'}: {data} is not a finite number"]
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return []
    return [p for key, value in items for p in _non_finite(value, f"{field}.{key}".lstrip("."))]


def config_from_dict(data: Any, *, source: str = "config") -> MockConfig:
    """Build a :class:`MockConfig` from plain data (parsed YAML/JSON), validated by the schema."""
    problems = data_problems(data)
    if problems:
        raise MockConfigError(f"{source}: " + "; ".join(problems))
    return _config(data)


def _config(data: dict[str, Any]) -> MockConfig:
    config = _build(MockConfig, data)
    assert isinstance(config, MockConfig)
    return config


def _build(tp: Any, value: Any) -> Any:
    """Schema-valid data into the dataclasses (nested groups and lists of them)."""
    if is_dataclass(tp) and isinstance(tp, type) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        return tp(
            **{f.name: _build(hints[f.name], value[f.name]) for f in fields(tp) if f.name in value}
        )
    if typing.get_origin(tp) is list and isinstance(value, list):
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in value]
    if tp is float and isinstance(value, int):
        return float(value)
    if (
        typing.get_origin(tp) is not None
        and isinstance(value, int)
        and float in typing.get_args(tp)
    ):
        return float(value)
    return value


def load_config(path: str | Path) -> MockConfig:
    """Read a YAML or JSON (by suffix) config file, checked against the schema with the same
    machinery as job files. Raises :class:`MockConfigError` (exit 2 in the CLI) whose
    ``problems`` locate each problem (``FILE:LINE:COL: FIELD: message``); an empty file is the
    default config."""
    path = Path(path)
    try:
        if not path.read_bytes().strip():
            return MockConfig()
    except OSError as err:
        raise MockConfigError(f"cannot read mock config {path}: {err.strerror or err}") from None
    data, positions, problems = load_document(path, kind=_KIND)
    if data is not None:
        problems += schema_problems(str(path), data, positions, strict_validator(CONFIG_SCHEMA))
    if problems or not isinstance(data, dict):
        raise MockConfigError("; ".join(str(p) for p in problems), problems=problems)
    return _config(data)


_KIND = DocumentKind(noun="mock config")


def command_line_config(
    config_file: str | Path | None,
    *,
    generation_seconds: float | None = None,
    seed: int | None = None,
    api_key: str | None = None,
    state_dir: str | Path | None = None,
) -> MockConfig:
    """The config of a command line (``mmgen mock``, ``python -m mock_server``, ``mmgen run
    --mock``): the file's, or the defaults, with the options that were given laid over it,
    validated."""
    config = load_config(config_file) if config_file is not None else MockConfig()
    if generation_seconds is not None:
        config.generation_seconds = generation_seconds
    if seed is not None:
        config.seed = seed
    if api_key is not None:
        config.api_key = api_key
    if state_dir is not None:
        config.state_dir = str(state_dir)
    return config.validate()
