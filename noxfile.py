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
    """mypy --strict on the package and the mock server; the tests too (relaxed: untyped test
    functions allowed), so test doubles cannot drift from the interfaces they stand in for."""
    session.install(".[dev]")
    session.run("mypy", "--strict", "mmgen", "mock_server")
    session.run("mypy", "tests")


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Regenerate docs/cli-reference.md from the commands' --help (tests/test_docs.py checks it)."""
    session.install(".")
    session.run("python", "-m", "mmgen.cli.reference")


#: (script, arguments) at a moderate size; each script's --help gives the full-size defaults.
BENCHMARKS = [
    ("bench/e2e.py", ["--jobs", "300", "--repeat", "2"]),
    ("bench/lag.py", ["--repeat", "2"]),
    ("bench/inflight.py", ["--jobs", "1000", "--generation-seconds", "10"]),
    ("bench/download.py", ["--megabytes", "256", "--repeat", "1"]),
    ("bench/soak.py", ["--jobs", "100", "--kills", "5"]),
    ("bench/soak.py", ["--jobs", "100", "--kills", "5", "--store"]),
    ("bench/plan.py", ["--jobs", "2000"]),
    ("bench/upload.py", ["--megabytes", "256"]),
    ("bench/bench_mock.py", []),
    ("bench/bench_validate.py", []),
]


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks at a moderate size (not in CI); `-- e2e --jobs 1000`: one, full size.

    Each script prints its figures and one JSON object as its last line (see bench/README.md).
    """
    session.install(".[dev]")
    if session.posargs:
        name, *args = session.posargs
        session.run("python", f"bench/{name.removesuffix('.py')}.py", *args)
        return
    failed = []
    for script, args in BENCHMARKS:
        try:
            session.run("python", script, *args)
        except nox.command.CommandFailed:
            failed.append(script)
    if failed:
        session.error(f"failed: {', '.join(failed)}")
