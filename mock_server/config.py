"""The mock's configuration: timing, auth, video format and every injectable fault.

A config file is YAML or JSON whose keys are the field names below (nested groups as nested
mappings); every key is optional, unknown keys are refused (usually a typo). Example::

    generation_seconds: 6        # time from create to Success/Fail, on the mock's clock
    generation_jitter: 1         # +/- seconds, drawn per task
    api_key: null                # null: any well-formed Bearer key is accepted
    seed: 42                     # same seed, same faults (per decision stream)
    download_url_ttl: 3600
    video: {width: 320, height: 180, fps: 10, seconds: 6}
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
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from mmgen.errors import UsageError

ENDPOINTS = ("create", "query", "retrieve", "download")
API_ENDPOINTS = ("create", "query", "retrieve")


class MockConfigError(UsageError):
    """The mock's config file (or a value given for it) cannot be used."""


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

    ``rpm``: at most this many accepted requests to those endpoints in any 60 s of the mock's
    clock (refused requests do not count). ``http_status`` 200 (as MiniMax usually does) or 429;
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
    """Per task with a callback_url, a broken handshake with this probability. ``mode``:

    - ``reject``: the challenge is sent, the echo is judged wrong: no updates follow;
    - ``malformed``: the handshake POST has no ``challenge`` value: no updates follow;
    - ``skip``: no handshake at all, the updates are sent anyway.
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
    """Format of the generated MP4 (even sides). The query's video_width/height report it."""

    width: int = 320
    height: int = 180
    fps: int = 10
    seconds: float = 6.0


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
    - ``challenge_timeout`` (3): seconds the callback receiver has to echo the challenge.
    - ``callback_timeout`` (5), ``callback_retries`` (0) and ``callback_retry_delay`` (1 s):
      per status-update POST (MiniMax's own retry policy is not documented).
    """

    generation_seconds: float = 6.0
    generation_jitter: float = 0.0
    api_key: str | None = None
    seed: int | None = None
    download_url_ttl: float = 3600.0
    challenge_timeout: float = 3.0
    callback_timeout: float = 5.0
    callback_retries: int = 0
    callback_retry_delay: float = 1.0
    video: VideoOptions = field(default_factory=VideoOptions)
    faults: Faults = field(default_factory=Faults)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> MockConfig:
        """Check ranges and choices; raises :class:`MockConfigError` naming the field."""
        problems: list[str] = []

        def need(ok: bool, where: str, what: str) -> None:
            if not ok:
                problems.append(f"{where}: {what}")

        def probability(where: str, value: float) -> None:
            need(0.0 <= value <= 1.0, where, f"must be between 0 and 1, not {value}")

        def endpoints(where: str, names: list[str], allowed: tuple[str, ...]) -> None:
            for name in names:
                need(
                    name in allowed, where, f"unknown endpoint {name!r} (use {', '.join(allowed)})"
                )

        need(self.generation_seconds >= 0, "generation_seconds", "must not be negative")
        need(self.generation_jitter >= 0, "generation_jitter", "must not be negative")
        need(self.download_url_ttl >= 0, "download_url_ttl", "must not be negative")
        need(self.challenge_timeout > 0, "challenge_timeout", "must be positive")
        need(self.callback_timeout > 0, "callback_timeout", "must be positive")
        need(self.callback_retries >= 0, "callback_retries", "must not be negative")
        need(self.callback_retry_delay >= 0, "callback_retry_delay", "must not be negative")
        need(self.api_key is None or _well_formed_key(self.api_key), "api_key", "must be one word")
        v = self.video
        need(v.width >= 16 and v.width % 2 == 0, "video.width", "must be even and at least 16")
        need(v.height >= 16 and v.height % 2 == 0, "video.height", "must be even and at least 16")
        need(v.width * v.height <= 1920 * 1088, "video", "must be at most 1920x1088")
        need(1 <= v.fps <= 60, "video.fps", "must be between 1 and 60")
        need(0 < v.seconds <= 30, "video.seconds", "must be between 0 and 30")
        f = self.faults
        rl = f.rate_limit
        probability("faults.rate_limit.probability", rl.probability)
        need(rl.rpm is None or rl.rpm >= 0, "faults.rate_limit.rpm", "must not be negative")
        endpoints("faults.rate_limit.endpoints", rl.endpoints, API_ENDPOINTS)
        need(rl.http_status in (200, 429), "faults.rate_limit.http_status", "must be 200 or 429")
        for group_name in ("server_errors", "drops"):
            group: EndpointRates = getattr(f, group_name)
            for endpoint in ENDPOINTS:
                probability(f"faults.{group_name}.{endpoint}", group.rate(endpoint))
        need(
            500 <= f.server_errors.status <= 599,
            "faults.server_errors.status",
            "must be a 5xx status",
        )
        for i, code in enumerate(f.codes):
            probability(f"faults.codes.{i}.probability", code.probability)
            need(code.code != 0, f"faults.codes.{i}.code", "must not be 0")
            endpoints(f"faults.codes.{i}.endpoints", code.endpoints, API_ENDPOINTS)
        probability("faults.tasks.fail_probability", f.tasks.fail_probability)
        probability("faults.tasks.slow_probability", f.tasks.slow_probability)
        need(f.tasks.slow_factor >= 1, "faults.tasks.slow_factor", "must be at least 1")
        probability("faults.sensitive.input_probability", f.sensitive.input_probability)
        probability("faults.sensitive.output_probability", f.sensitive.output_probability)
        need(
            f.balance.max_tasks is None or f.balance.max_tasks >= 0,
            "faults.balance.max_tasks",
            "must not be negative",
        )
        for name in ("drop", "duplicate", "reorder", "delay"):
            probability(f"faults.callbacks.{name}", getattr(f.callbacks, name))
        need(
            f.callbacks.delay_seconds >= 0, "faults.callbacks.delay_seconds", "must not be negative"
        )
        probability("faults.challenge.probability", f.challenge.probability)
        need(
            f.challenge.mode in ("reject", "malformed", "skip"),
            "faults.challenge.mode",
            f"must be reject, malformed or skip, not {f.challenge.mode!r}",
        )
        d = f.downloads
        probability("faults.downloads.slow_probability", d.slow_probability)
        probability("faults.downloads.truncate_probability", d.truncate_probability)
        probability("faults.downloads.expired_probability", d.expired_probability)
        need(d.bytes_per_second > 0, "faults.downloads.bytes_per_second", "must be positive")
        need(
            d.truncate_mode in ("abort", "short"),
            "faults.downloads.truncate_mode",
            f"must be abort or short, not {d.truncate_mode!r}",
        )
        need(
            0 <= d.truncate_fraction < 1,
            "faults.downloads.truncate_fraction",
            "must be at least 0 and below 1",
        )
        if problems:
            raise MockConfigError("invalid mock config: " + "; ".join(problems))
        return self


def _well_formed_key(key: str) -> bool:
    return bool(key) and not any(c.isspace() for c in key) and key.isprintable()


def config_from_dict(data: Any, *, source: str = "config") -> MockConfig:
    """Build and validate a :class:`MockConfig` from plain data (parsed YAML/JSON)."""
    config = _convert(data, MockConfig, "")
    assert isinstance(config, MockConfig)
    try:
        return config.validate()
    except MockConfigError as err:
        raise MockConfigError(f"{source}: {err.message}") from None


def load_config(path: str | Path) -> MockConfig:
    """Read a YAML or JSON config file; raises :class:`MockConfigError` (exit 2 in the CLI)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise MockConfigError(f"cannot read mock config {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise MockConfigError(f"mock config {path} is not UTF-8 text") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        detail = str(err).replace("\n", " ")
        raise MockConfigError(f"mock config {path} is not valid YAML/JSON: {detail}") from None
    if data is None:
        data = {}
    try:
        return config_from_dict(data, source=str(path))
    except MockConfigError as err:
        if err.message.startswith(str(path)):
            raise
        raise MockConfigError(f"{path}: {err.message}") from None


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check and convert parsed data against a type annotation (dataclasses recursively)."""
    label = where or "(top level)"
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise MockConfigError(f"{label}: expected a list, got {type(value).__name__}")
        (item_type,) = typing.get_args(tp)
        return [_convert(item, item_type, f"{where}.{i}") for i, item in enumerate(value)]
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(value, dict):
            raise MockConfigError(f"{label}: expected a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        known = {f.name: f for f in fields(tp)}
        unknown = sorted(set(value) - set(known), key=str)
        if unknown:
            raise MockConfigError(
                f"{label}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        kwargs: dict[str, Any] = {}
        for name, spec in known.items():
            path = f"{where}.{name}" if where else name
            if name in value:
                kwargs[name] = _convert(value[name], hints[name], path)
            elif spec.default is MISSING and spec.default_factory is MISSING:
                raise MockConfigError(f"{label}: missing required key {name!r}")
        return tp(**kwargs)
    if tp is bool:
        if not isinstance(value, bool):
            raise MockConfigError(f"{label}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MockConfigError(f"{label}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MockConfigError(f"{label}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise MockConfigError(f"{label}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {label}")  # pragma: no cover
