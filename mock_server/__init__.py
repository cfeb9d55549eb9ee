"""A faithful imitation of the MiniMax video generation API, for rehearsals and tests.

``create_app(config, clock=...)`` builds the API's starlette app (see :mod:`mock_server.app` for
the routes, ``schemas/mock_config.json`` and :mod:`mock_server.config` for every option and
fault); downloads are served on it under ``/cdn/`` unless the CDN origin
(:func:`mock_server.downloads.cdn_app`) is served too. :class:`MockServers` serves both origins
in threads; ``mmgen mock`` and ``python -m mock_server``, one click command
(:mod:`mock_server.command`), serve them in the foreground (:func:`mock_server.server.serve`),
all through :mod:`mmgen.serving`.

Rooms: ``app`` (API handlers, inspection), ``callbacks`` (the callback check and updates: one
scheduler, a bounded worker pool), ``downloads`` (signed URLs, the CDN origin), ``responses``
(streamed, padded, faulty responses), ``tasks`` (a task's life on the clock), ``store`` (tasks,
counters, views), ``persistence`` (``state_dir``), ``video`` and ``h264`` (the MP4s),
``validation`` (request bodies), ``faults`` (seeded decisions), ``clock``, ``config``, ``server``,
``command`` (the command line).
"""

from mock_server.app import create_app
from mock_server.clock import ManualClock
from mock_server.config import MockConfig, MockConfigError, config_from_dict, load_config
from mock_server.server import MockServers

__all__ = [
    "ManualClock",
    "MockConfig",
    "MockConfigError",
    "MockServers",
    "config_from_dict",
    "create_app",
    "load_config",
]
