"""The mock's one command line: ``mmgen mock`` and ``python -m mock_server`` are this click
command (``mmgen`` adds it to its group), so their options cannot drift apart.

It serves the bundled mock, or records a real API's traffic through a proxy (``--record``), or
replays a recording offline (``--replay``), in the foreground until Ctrl-C (exit 0). A bad
option, config file or port: one line on stderr, exit 2. Every key of a config file, with its
default and meaning: ``--print-config-schema``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from click.core import ParameterSource

from mmgen.errors import MmgenError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="API port (0: any free).",
)
@click.option(
    "--cdn-port",
    type=click.IntRange(min=-1, max=65535),
    default=0,
    show_default=True,
    help="Port of the download origin (MiniMax serves videos from another host than its API); "
    "0: any free port; -1: serve downloads on the API's port.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML/JSON file of mock options and faults, e.g. `seed: 7` and "
    "`faults: {rate_limit: {probability: 0.1}}`; --print-config-schema lists every key with "
    "its default and meaning. The options below override it.",
)
@click.option(
    "--generation-seconds",
    type=float,
    help="Seconds from create to Success/Fail, on the mock's clock (default 6).",
)
@click.option("--seed", type=int, help="Seed that makes every injected fault reproducible.")
@click.option("--api-key", help="Accept only this Bearer key (others get 2049); default: any key.")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the tasks in this folder, so a restarted mock still knows them.",
)
@click.option(
    "--record",
    "record_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Instead of the mock: proxy to --upstream and record the traffic to this new file "
    "(videos in FILE.d/; keys redacted); replay it with --replay FILE.",
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
@click.option(
    "--print-config-schema",
    is_flag=True,
    help="Print the JSON Schema of --config files (every key, its default and meaning); exit.",
)
@click.option("-q", "--quiet", is_flag=True, help="No access log, only errors.")
@click.pass_context
def mock_command(
    ctx: click.Context,
    host: str,
    port: int,
    cdn_port: int,
    config_file: Path | None,
    generation_seconds: float | None,
    seed: int | None,
    api_key: str | None,
    state_dir: Path | None,
    record_file: Path | None,
    upstream: str | None,
    public_url: str | None,
    replay_file: Path | None,
    print_config_schema: bool,
    quiet: bool,
) -> None:
    """Serve the mock MiniMax API in the foreground until Ctrl-C.

    Point mmgen (or any client) at it with MINIMAX_BASE_URL=<the printed URL>; any API key
    works unless --api-key is given. Inspect it at /_mock/tasks, /_mock/stats and
    /_mock/config; POST /_mock/reset empties it.

    With --record FILE it is a proxy to a real API that records everything; with --replay
    FILE it serves such a recording offline (its journal at /_replay/journal).
    """
    # `mmgen -q mock` (the group's -v/-q) and `mock -q` alike
    verbosity = -1 if quiet else int(getattr(ctx.find_root().obj, "verbosity", 0))
    alone = ctx.parent is None  # python -m mock_server, not a command of the mmgen group
    name = "mock_server" if alone else "mmgen mock"
    error_prefix = "mock_server" if alone else "mmgen"
    if print_config_schema:
        from mmgen.schemas import load_schema
        from mock_server.config import CONFIG_SCHEMA

        click.echo(json.dumps(load_schema(CONFIG_SCHEMA), indent=2, ensure_ascii=False))
        return
    level = "warning" if verbosity < 0 else "debug" if verbosity > 1 else "info"
    if ctx.get_parameter_source("upstream") == ParameterSource.ENVIRONMENT and not record_file:
        upstream = None  # MINIMAX_BASE_URL only matters to --record
    try:
        if record_file or replay_file or upstream or public_url:
            mock_options = (config_file, generation_seconds, seed, api_key, state_dir)
            _record_or_replay(
                name, host, port, level, verbosity >= 0, record_file, upstream, public_url,
                replay_file, any(option is not None for option in mock_options),
            )  # fmt: skip
        else:
            _serve_mock(
                name, host, port, cdn_port, level, verbosity >= 0, config_file,
                generation_seconds, seed, api_key, state_dir,
            )  # fmt: skip
    except MmgenError as err:
        click.echo(f"{error_prefix}: error: {err.one_line()}", err=True)
        ctx.exit(err.exit_code)
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is meant to stop
        click.echo(f"{name}: stopped", err=True)


def _serve_mock(
    name: str,
    host: str,
    port: int,
    cdn_port: int,
    level: str,
    access_log: bool,
    config_file: Path | None,
    generation_seconds: float | None,
    seed: int | None,
    api_key: str | None,
    state_dir: Path | None,
) -> None:
    from mock_server.config import command_line_config
    from mock_server.server import serve

    config = command_line_config(
        config_file,
        generation_seconds=generation_seconds,
        seed=seed,
        api_key=api_key,
        state_dir=state_dir,
    )

    def ready(url: str) -> None:
        click.echo(f"{name}: serving the MiniMax API on {url} (Ctrl-C to stop)")
        click.echo(f"  export MINIMAX_BASE_URL={url}")

    def cdn_ready(url: str) -> None:  # on stderr: stdout's URL is the API's
        click.echo(f"{name}: videos are downloaded from {url}", err=True)

    serve(
        config,
        host=host,
        port=port,
        cdn_port=None if cdn_port < 0 else cdn_port,
        on_ready=ready,
        on_cdn_ready=cdn_ready,
        log_level=level,
        access_log=access_log,
    )


def _record_or_replay(
    name: str,
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
    """``--record`` / ``--replay``: build the proxy or the replay, serve it."""
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
        click.echo(f"{name}: {what} on {url} (Ctrl-C to stop)")
        click.echo(f"  export MINIMAX_BASE_URL={url}")

    serve_forever(app, host, port, on_ready=ready, log_level=level, access_log=access_log)
