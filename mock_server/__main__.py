"""``python -m mock_server``: serve the mock MiniMax API in the foreground until Ctrl-C.

The mock is a program of its own (it imports nothing of mmgen's CLI): this is its command line,
written with click like ``mmgen mock``, whose options it shares, plus ``--cdn-port`` and
``--state-dir``. Exit 0 after Ctrl-C, 2 for a bad option, config file or port.
"""

from __future__ import annotations

from pathlib import Path

import click

from mmgen.errors import UsageError
from mock_server.config import command_line_config
from mock_server.server import serve


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="API port (0: any).")
@click.option(
    "--cdn-port",
    type=int,
    default=0,
    show_default=True,
    help="Port of the download (CDN) origin; 0: any free port; -1: serve downloads on the API "
    "origin.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML/JSON file of mock options and faults (schemas/mock_config.json).",
)
@click.option("--generation-seconds", type=float, help="Seconds from create to Success/Fail.")
@click.option("--seed", type=int, help="Seed that makes every injected fault reproducible.")
@click.option("--api-key", help="Accept only this Bearer key (others get 2049).")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep tasks in this folder so a restarted mock still knows them.",
)
@click.option("-q", "--quiet", is_flag=True, help="No access log.")
def main(
    host: str,
    port: int,
    cdn_port: int,
    config_file: Path | None,
    generation_seconds: float | None,
    seed: int | None,
    api_key: str | None,
    state_dir: Path | None,
    quiet: bool,
) -> None:
    """Serve the mock MiniMax API (inspect it at /_mock/tasks and /_mock/stats)."""
    try:
        config = command_line_config(
            config_file,
            generation_seconds=generation_seconds,
            seed=seed,
            api_key=api_key,
            state_dir=state_dir,
        )

        def ready(url: str) -> None:
            click.echo(f"mock_server: serving the MiniMax API on {url} (Ctrl-C to stop)")
            click.echo(f"  export MINIMAX_BASE_URL={url}")

        def cdn_ready(url: str) -> None:
            click.echo(f"mock_server: download URLs point at {url}", err=True)

        serve(
            config,
            host=host,
            port=port,
            cdn_port=None if cdn_port < 0 else cdn_port,
            on_ready=ready,
            on_cdn_ready=cdn_ready,
            log_level="warning" if quiet else "info",
            access_log=not quiet,
        )
    except UsageError as err:
        click.echo(f"mock_server: error: {err.one_line()}", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is meant to stop
        click.echo("mock_server: stopped", err=True)


main(prog_name="python -m mock_server")
