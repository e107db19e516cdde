"""What the client tests share (conftest.py re-exports the fixtures): the vproto binary, real
servers started as processes, free ports, and the generated Python client importable from
clients/python.

The tests run the generated clients against real processes: `vproto serve driver` (the
reference driver) and `vproto conform --serve` (the mock server that judges a client).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON_CLIENT = REPO / "clients" / "python"
TYPESCRIPT_CLIENT = REPO / "clients" / "typescript"
VPROTO_BIN = Path(os.environ.get("VPROTO_BIN", REPO / "target" / "debug" / "vproto"))
OPENRPC = REPO / "schema" / "vproto.openrpc.json"

# The generated client, as checked in (a fresh `pip install` of it is tested separately).
sys.path.insert(0, str(PYTHON_CLIENT))


def vproto() -> str:
    """The vproto binary; the test fails (never skips) when it is missing."""
    if not os.access(VPROTO_BIN, os.X_OK):
        pytest.fail(f"no vproto binary at {VPROTO_BIN}: run `cargo build -p vproto-cli` or set VPROTO_BIN",
                    pytrace=False)
    return str(VPROTO_BIN)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(ready, what: str, process: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Polls `ready()` until true; fails naming `what` (with the process's stderr) otherwise."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}: {read_stderr(process)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not ready after {timeout}s")
        time.sleep(0.02)


def read_stderr(process: subprocess.Popen) -> str:
    try:
        return process.stderr.read().decode(errors="replace") if process.stderr else ""
    except ValueError:
        return ""


def can_connect(address: str) -> bool:
    """Whether a connection to `unix:PATH` or `tcp:HOST:PORT`/`http://HOST:PORT` succeeds."""
    try:
        if address.startswith("unix:"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(address[len("unix:"):])
            return True
        host_port = address.split("//", 1)[-1] if address.startswith("http") else address[len("tcp:"):]
        host, _, port = host_port.rstrip("/").rpartition(":")
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(params=["unix", "tcp", "http"])
def driver_address(request, tmp_path):
    """`vproto serve driver` (the reference driver, examples/driver.json) on a Unix socket, TCP
    or HTTP; yields its address."""
    yield from serve_driver(request.param, tmp_path)


@pytest.fixture
def driver_address_tcp(tmp_path):
    """`vproto serve driver` on loopback TCP."""
    yield from serve_driver("tcp", tmp_path)


@pytest.fixture
def driver_address_http(tmp_path):
    """`vproto serve driver` on loopback HTTP."""
    yield from serve_driver("http", tmp_path)


def serve_driver(transport: str, tmp_path: Path):
    """Starts `vproto serve driver` on `transport`, yields its address, stops it."""
    if transport == "unix":
        address = f"unix:{tmp_path / 'driver.sock'}"
    elif transport == "tcp":
        address = f"tcp:127.0.0.1:{free_port()}"
    else:
        address = f"http://127.0.0.1:{free_port()}"
    # tcp: and http:// listeners want credentials: a token every caller presents.
    credentials = [] if transport == "unix" else ["--token-file", str(token_file(tmp_path))]
    process = subprocess.Popen(
        [vproto(), "serve", "driver", "--listen", address, "--config", str(REPO / "examples" / "driver.json"),
         *credentials],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: can_connect(address), f"vproto serve driver --listen {address}", process)
        yield address
    finally:
        stop(process)


#: The token of the test servers on tcp: and http:// (written to a 0600 file per test).
TOKEN = "vproto-clients-test-token-7f3a9c"


def token_file(directory: Path) -> Path:
    """A mode 0600 file holding TOKEN in `directory`."""
    path = directory / "token"
    if not path.exists():
        path.write_text(TOKEN + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path


def token_for(address: str):
    """The token to present to `address` (None for a Unix socket)."""
    return None if address.startswith("unix:") else TOKEN


def vproto_call(address: str, method: str, directory: Path) -> dict:
    """What the Rust client (`vproto call`) gets from `method` at `address`."""
    credentials = [] if address.startswith("unix:") else ["--token-file", str(token_file(directory))]
    proc = subprocess.run([vproto(), "call", "--connect", address, *credentials, method], capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, f"vproto call {method}: {proc.stderr.decode()}"
    return json.loads(proc.stdout)


class ConformServe:
    """`vproto conform --serve ADDR --sessions 1 --report json`, started; `finish()` waits for
    its verdict."""

    def __init__(self, address: str, report: Path):
        self.address, self.report = address, report
        # A line transport's session ends when the one connection closes; HTTP's after 3 s idle.
        ending = ["--idle", "3s"] if address.startswith("http") else ["--sessions", "1", "--idle", "5s"]
        self.process = subprocess.Popen(
            [vproto(), "conform", "--serve", address, *ending, "--timeout", "120s",
             "--report", "json", "--out", str(report), "--schema", str(OPENRPC)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Ready once it says so on stderr (a probe connection would count as the session).
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        wait_until(lambda: any("serving on" in line for line in self.stderr), f"vproto conform --serve {address}",
                   self.process)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def finish(self) -> tuple[int, dict]:
        """The exit status and the JSON report."""
        try:
            self.process.wait(timeout=150)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"vproto conform --serve {self.address} did not end")
        self.reader.join(timeout=10)
        assert self.report.exists(), f"no report: {''.join(self.stderr)}"
        return self.process.returncode, json.loads(self.report.read_text(encoding="utf-8"))


def openrpc_methods() -> list[dict]:
    """The methods of the published OpenRPC description."""
    return json.loads(OPENRPC.read_text(encoding="utf-8"))["methods"]


def node_tools() -> tuple[str, str]:
    """`node` and `npm`; the test fails when they are missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the TypeScript client tests", pytrace=False)
    return node, npm
