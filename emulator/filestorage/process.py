"""The local file storage servers (moto, Azurite, gcp-storage-emulator) run as subprocesses on free loopback ports:
starting one, probing it until it answers, and stopping it, the same way for every provider."""

from __future__ import annotations

import atexit
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP(S)_PROXY


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_answers(url: str, *, any_status: bool = False) -> bool:
    """True when ``url`` answers 200 (or any HTTP status with ``any_status``, e.g. a 403 without credentials)."""
    try:
        with _OPENER.open(url, timeout=2) as response:
            return response.status == 200 or any_status
    except urllib.error.HTTPError:
        return any_status
    except (urllib.error.URLError, OSError):
        return False


def start_server(
    name: str,
    launcher: str,
    args_for_port: Callable[[int], list[str]],
    *,
    ready: Callable[[int], bool],
    log_path: Path,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, int]:
    """Run ``python -c launcher *args`` on a free port until ``ready(port)``; returns (process, port).

    The launcher scripts exit with the emulator (they watch their parent), so a killed test run leaves nothing
    behind. The free port may be taken between probing and binding, hence a few attempts."""
    last_error = "not started"
    for _attempt in range(3):
        port = free_port()
        with open(log_path, "ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-c", launcher, *args_for_port(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # stopped by stop(), atexit or the parent watchdog, not by Ctrl-C
            )
        ok, last_error = _wait_ready(proc, port, ready)
        if ok:
            return proc, port
        terminate(proc)
    raise RuntimeError(f"{name} did not start ({last_error}); see {log_path}")


def _wait_ready(proc: subprocess.Popen, port: int, ready: Callable[[int], bool]) -> tuple[bool, str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False, f"exited with code {proc.returncode}"
        if ready(port):
            return True, ""
        time.sleep(0.05)
    return False, f"no answer on port {port} within {START_TIMEOUT:.0f} s"


def terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


class ServerProcess:
    """Stopping a storage server run as a child process (``_proc``, guarded by ``_lock``): its SDK clients are
    closed first (``_close_clients``), then the process is terminated."""

    _proc: subprocess.Popen | None

    def _close_clients(self) -> None:
        """Close the clients the storage holds on the server."""

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            self._close_clients()
            if proc is not None:
                terminate(proc)
                atexit.unregister(self.stop)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
