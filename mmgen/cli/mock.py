"""``mmgen mock``: serve the bundled mock, or record real traffic through a proxy, or replay a
recording offline, in the foreground until Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from mmgen.cli.app import PORT, Settings, handle_errors, main


@main.command("mock")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=PORT, default=8000, show_default=True, help="Port (0: any free one).")
@click.option(
    "--cdn-port",
    type=PORT,
    default=0,
    show_default=True,
    help="Port of the download origin (MiniMax serves videos from another host; 0: any free).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML/JSON file of mock options and faults (see mock_server/config.py).",
)
@click.option(
    "--generation-seconds",
    type=float,
    help="Seconds from create to Success/Fail (default 6; overrides the config file).",
)
@click.option("--seed", type=int, help="Seed that makes every injected fault reproducible.")
@click.option("--api-key", help="Accept only this Bearer key (others get 2049); default: any key.")
@click.option(
    "--record",
    "record_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Instead of the mock: proxy to --upstream and record the traffic to this new file "
    "(videos in FILE.d/; keys redacted). See docs/record-replay.md.",
)
@click.option(
    "--upstream",
    envvar="MINIMAX_BASE_URL",
    show_envvar=True,
    metavar="URL",
    help="The API --record proxies to.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="With --record: the base URL under which the upstream reaches this proxy for "
    "callbacks (a tunnel); default: the URL the client used.",
)
@click.option(
    "--replay",
    "replay_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Instead of the mock: serve this recording offline (callbacks replayed).",
)
@click.pass_obj
@handle_errors
def mock_command(
    settings: Settings,
    host: str,
    port: int,
    cdn_port: int,
    config_file: Path | None,
    generation_seconds: float | None,
    seed: int | None,
    api_key: str | None,
    record_file: Path | None,
    upstream: str | None,
    public_url: str | None,
    replay_file: Path | None,
) -> None:
    """Serve the bundled mock MiniMax API in the foreground until Ctrl-C.

    Point mmgen (or any client) at it with MINIMAX_BASE_URL=<the printed URL>; any API key
    works unless --api-key is given. Inspect it at /_mock/tasks and /_mock/stats.

    With --record FILE it is a proxy to a real API that records everything; with --replay
    FILE it serves such a recording offline (its journal at /_replay/journal).
    """
    level = "warning" if settings.verbosity < 0 else "debug" if settings.verbosity > 1 else "info"
    source = click.get_current_context().get_parameter_source("upstream")
    if source == ParameterSource.ENVIRONMENT and record_file is None:
        upstream = None  # MINIMAX_BASE_URL only matters to --record
    if record_file or replay_file or upstream or public_url:
        mock_options = (config_file, generation_seconds, seed, api_key)
        _record_or_replay(
            host, port, level, settings.verbosity >= 0, record_file, upstream, public_url,
            replay_file, any(option is not None for option in mock_options),
        )  # fmt: skip
        return
    from mock_server.config import command_line_config
    from mock_server.server import serve

    config = command_line_config(
        config_file, generation_seconds=generation_seconds, seed=seed, api_key=api_key
    )

    def ready(url: str) -> None:
        click.echo(f"mmgen mock: serving the MiniMax API on {url} (Ctrl-C to stop)")
        click.echo(f"  export MINIMAX_BASE_URL={url}")

    def cdn_ready(url: str) -> None:  # on stderr, as python -m mock_server: stdout's URL is the API
        click.echo(f"mmgen mock: videos are downloaded from {url}", err=True)

    try:
        serve(
            config,
            host=host,
            port=port,
            cdn_port=cdn_port,
            on_ready=ready,
            on_cdn_ready=cdn_ready,
            log_level=level,
            access_log=settings.verbosity >= 0,
        )
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is meant to stop
        click.echo("mmgen mock: stopped", err=True)


def _record_or_replay(
    host: str,
    port: int,
    level: str,
    access_log: bool,
    record_file: Path | None,
    upstream: str | None,
    public_url: str | None,
    replay_file: Path | None,
    mock_options: bool,
) -> None:
    """``mmgen mock --record`` / ``--replay``: build the proxy or the replay, serve it."""
    import os

    from mmgen.serving import serve_forever
    from mock_server.recording import build_app

    app, what = build_app(
        record=record_file,
        upstream=upstream,
        public_url=public_url,
        replay=replay_file,
        mock_options=mock_options,
        secrets_=[os.environ.get("MINIMAX_API_KEY")],
    )

    def ready(url: str) -> None:
        click.echo(f"mmgen mock: {what} on {url} (Ctrl-C to stop)")
        click.echo(f"  export MINIMAX_BASE_URL={url}")

    try:
        serve_forever(app, host, port, on_ready=ready, log_level=level, access_log=access_log)
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is meant to stop
        click.echo("mmgen mock: stopped", err=True)
