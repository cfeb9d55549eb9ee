"""A faithful imitation of the MiniMax video generation API, for rehearsals and tests.

``create_app(config, clock=...)`` builds the starlette app (see :mod:`mock_server.app` for the
routes, :mod:`mock_server.config` for every option and fault); ``mmgen mock`` and
``python -m mock_server`` serve it under uvicorn (:func:`mock_server.server.serve`).
"""

from mock_server.app import create_app
from mock_server.clock import ManualClock
from mock_server.config import MockConfig, MockConfigError, config_from_dict, load_config

__all__ = [
    "ManualClock",
    "MockConfig",
    "MockConfigError",
    "config_from_dict",
    "create_app",
    "load_config",
]
