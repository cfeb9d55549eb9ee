"""Testing helpers built on the mock: ``harness`` (a mock served in threads for a test),
``asgi_bridge`` (the app on an httpx transport, no sockets), ``respx_routing`` (respx routes to
the app) and ``pytest_plugin`` (the ``minimax_mock`` and ``minimax_respx`` fixtures)."""
