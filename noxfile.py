"""Developer sessions: `nox -s lint typecheck tests` is what CI runs (see README.md)."""

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

SOURCES = ["mmgen", "mock_server", "tests", "bench", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (offline: respx and the bundled mock server on loopback)."""
    session.install(".[dev]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the mock server."""
    session.install(".[dev]")
    session.run("mypy", "--strict", "mmgen", "mock_server")
