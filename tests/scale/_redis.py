"""A real ``redis-server`` for the scale-out tests: started on a free loopback port, in a temp dir.

Durability is what the Redis journal relies on (``docs``: AOF with ``appendfsync always``), so the
server is started that way; ``kill()`` sends SIGKILL and ``start()`` brings the same data back
from its append-only file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

INSTALL_HINT = "install it with: apt-get install redis-server"


def _die_with_parent() -> None:
    """In the child: be killed with the test process, even if it dies without tearing down."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def redis_server_binary() -> str:
    """The ``redis-server`` executable, or skip (locally) / fail (when ``CI`` is set)."""
    exe = shutil.which("redis-server")
    if exe is None:
        message = f"redis-server not found; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the scale-out tests)")
        pytest.skip(message)
    return exe


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process owned by a test (AOF on, ``appendfsync always``).

    Args:
        folder: Its working directory (the AOF lives there).
        port: The loopback port; a free one if omitted.
    """

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.exe = redis_server_binary()
        self.folder = folder
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again) and wait until it answers PING with its data loaded."""
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [
            self.exe,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self.proc.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING in time")
            time.sleep(0.02)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (what a crash looks like) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server if it runs (SIGTERM, then SIGKILL)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            self.kill()


def require_redis_extra() -> None:
    """Skip the calling test module without the ``[redis]`` extra (fail when ``CI`` is set)."""
    import importlib.util

    if all(importlib.util.find_spec(name) for name in ("redis", "taskiq", "taskiq_redis")):
        return
    message = "the scale-out tests need the [redis] extra: pip install 'relaydance-async[redis]'"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must run them)", pytrace=False)
    pytest.skip(message, allow_module_level=True)
