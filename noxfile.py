"""Developer tasks: ``nox`` runs tests (every installed Python 3.10-3.13), lint and typing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True


def _expose_pyenv_versions() -> None:
    """Let every pyenv-installed CPython answer to ``pythonX.Y`` (shims hide inactive ones)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    versions = root / "versions"
    if not versions.is_dir():
        return
    found = sorted(
        (p.name for p in versions.iterdir() if p.name.startswith(SUPPORTED)),
        key=lambda name: tuple(int(x) for x in name.split(".") if x.isdigit()),
        reverse=True,
    )
    # `pyenv exec` (how `python3 -m nox` starts) pins PYENV_VERSION to one version: keep it
    # first and add the others after it.
    current = [v for v in os.environ.get("PYENV_VERSION", "").split(":") if v]
    wanted = current + [v for v in found if v not in current]
    if wanted:
        os.environ["PYENV_VERSION"] = ":".join(wanted)


def _installed_pythons() -> list[str]:
    installed = []
    for version in SUPPORTED:
        exe = shutil.which(f"python{version}")
        if exe and subprocess.run([exe, "-c", ""], capture_output=True).returncode == 0:
            installed.append(version)
    return installed


_expose_pyenv_versions()
PYTHONS = _installed_pythons()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (pure and functional, against the emulator on loopback)."""
    session.install("-e", ".[test,media,cli,redis]")
    args = list(session.posargs)
    if not args and PYTHONS and session.python != PYTHONS[-1]:
        # The long scale tests (10,000 jobs, 10,000 batch items) run once, on the newest Python.
        args = ["-m", "not slow"]
    session.run("pytest", "-q", *args)


@nox.session(python=PYTHONS[-1:] or None)
def lint(session: nox.Session) -> None:
    """Ruff: lint and formatting."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[-1:] or None)
def typing(session: nox.Session) -> None:
    """mypy --strict over the package, on the oldest and newest supported Python targets."""
    session.install("-e", ".[test,media,cli,redis]", "mypy>=1.10")
    session.run("mypy", "--strict", "relaydance_async")
    session.run("mypy", "--strict", "--python-version", "3.10", "relaydance_async")


@nox.session(python=PYTHONS[-1:] or None)
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly: a broken link or reference fails the build."""
    session.install("-e", ".[docs]")
    site = Path(session.create_tmp()) / "site"
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(site), env={"NO_MKDOCS_2_WARNING": "1"}
    )
    session.log(f"site built in {site}")


@nox.session(python=PYTHONS[-1:] or None)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with the baselines (``nox -s bench -- --quick``: short run)."""
    session.install("-e", ".[test,media,cli,redis]", "requests")
    session.run("python", "-m", "benchmarks", *session.posargs)
