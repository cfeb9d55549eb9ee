"""Record real MiniMax traffic once, replay it offline (``mmgen mock --record`` / ``--replay``).

- :func:`create_recorder_app` (:mod:`.recorder`): a proxy to a real (or any MiniMax-like) API
  that writes every exchange, callback and video to a recording, credentials redacted;
- :func:`create_replay_app` (:mod:`.replay`): serves a recording offline, callbacks included;
- :mod:`.format`: the recording on disk (``FILE`` JSON Lines + ``FILE.d/videos/``) and the
  request matching; :mod:`.redaction`: keeping keys out of it.

See ``docs/record-replay.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import httpx
from starlette.applications import Starlette

from mmgen.errors import UsageError
from mock_server.recording.format import Recording, load_recording
from mock_server.recording.recorder import create_recorder_app, display_url
from mock_server.recording.replay import create_replay_app

__all__ = ["Recording", "build_app", "create_recorder_app", "create_replay_app", "load_recording"]


def build_app(
    *,
    record: Path | None,
    upstream: str | None,
    public_url: str | None,
    replay: Path | None,
    mock_options: bool = False,
    secrets_: Iterable[str | None] = (),
) -> tuple[Starlette, str]:
    """The app of ``mmgen mock --record`` or ``--replay`` and what it does, in a few words.

    One clear UsageError for what cannot work: both or neither mode, ``upstream`` or
    ``public_url`` without ``record``, options of the bundled mock (``mock_options``), no
    upstream, a URL that is not http(s), a recording that exists already or cannot be read.
    """
    if record is not None and replay is not None:
        raise UsageError("--record and --replay cannot be combined: record first, then replay")
    for name, value in (("--upstream", upstream), ("--public-url", public_url)):
        if record is None and value is not None:
            raise UsageError(f"{name} only makes sense with --record FILE")
    if mock_options:
        raise UsageError(
            "--config, --generation-seconds, --seed, --api-key and --state-dir configure the "
            "bundled mock; they do nothing with --record or --replay"
        )
    if replay is not None:
        return create_replay_app(replay), f"replaying {replay}"
    if record is None:
        raise UsageError("give --record FILE or --replay FILE")
    if not upstream:
        raise UsageError(
            "--record needs the API to proxy to", hint="give --upstream URL or MINIMAX_BASE_URL"
        )
    for name, url in (("--upstream", upstream), ("--public-url", public_url)):
        if url is not None:
            try:
                parsed = httpx.URL(url)
            except httpx.InvalidURL:
                parsed = httpx.URL()
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise UsageError(f"{name} must be an absolute http(s) URL, not {url!r}")
    app = create_recorder_app(record, upstream, public_url=public_url, secrets_=secrets_)
    return app, f"recording {display_url(upstream)} to {record}"
