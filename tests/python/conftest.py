"""Start a real `hangar-server` (with the Rust fixture provider and the PyPI
`mcp-server-time` provider) on a free loopback port for the interop tests.

A second server (`real_servers`) runs third-party npm MCP servers as providers:
`@modelcontextprotocol/server-everything`, `server-filesystem` and `server-memory`.

Environment:
  HANGAR_BIN_DIR  directory holding `hangar-server` and `hangar-fixture`
                  (default: <repo>/target/debug)
  HANGAR_NPM_BIN  directory holding the npm servers' executables (`npm ci` in tests/npm;
                  default: <repo>/tests/npm/node_modules/.bin); they need `node` on PATH
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
REAP_TIMEOUT_S = 10.0


class HangarServer(NamedTuple):
    """What the fixture yields: `url, key = hangar_server` works."""

    url: str  # base URL, e.g. http://127.0.0.1:PORT
    key: str  # admin bearer key

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _bin_dir() -> Path:
    return Path(os.environ.get("HANGAR_BIN_DIR", REPO_ROOT / "target" / "debug")).resolve()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- /proc scanning (no psutil) ------------------------------------------------------------


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    sid: int
    state: str
    starttime: int
    cmdline: str


def _read_proc(pid: int) -> _Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw_cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The comm field (2nd) may contain spaces and parentheses: split after the last ')'.
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0]=state, rest[1]=ppid, rest[2]=pgrp, rest[3]=session, ..., rest[19]=starttime
    return _Proc(
        pid=pid,
        ppid=int(rest[1]),
        sid=int(rest[3]),
        state=rest[0],
        starttime=int(rest[19]),
        cmdline=raw_cmd.replace(b"\0", b" ").decode(errors="replace").strip(),
    )


def _all_procs() -> list[_Proc]:
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (p := _read_proc(int(entry))) is not None:
            procs.append(p)
    return procs


def _alive(p: _Proc) -> bool:
    return p.state not in ("Z", "X")


def _descendants(root: int) -> list[_Proc]:
    procs = _all_procs()
    children: dict[int, list[_Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child.pid)
    return out


def _still_running(tracked: dict[int, _Proc], sid: int) -> list[_Proc]:
    """Processes that are still alive and either were seen as descendants of the server
    (same pid and start time, so not a reused pid) or belong to the server's session
    (catches orphans re-parented to init that we never saw)."""
    left = {}
    for p in _all_procs():
        if not _alive(p) or p.pid == os.getpid():
            continue
        seen = tracked.get(p.pid)
        if (seen is not None and seen.starttime == p.starttime) or p.sid == sid:
            left[p.pid] = p
    return sorted(left.values(), key=lambda p: p.pid)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "<no log>"


# --- the server fixture -------------------------------------------------------------------


def _write_config(path: Path, bin_dir: Path) -> None:
    fixture = bin_dir / "hangar-fixture"
    time_server = Path(sys.executable).parent / "mcp-server-time"
    for exe in (fixture, time_server):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"missing executable {exe} (build with cargo / pip install -r requirements.txt)")
    # JSON strings are valid YAML flow scalars: quote the paths that way.
    path.write_text(
        "providers:\n"
        "  fixture:\n"
        f"    command: [{json.dumps(str(fixture))}]\n"
        "  time:\n"
        f"    command: [{json.dumps(str(time_server))}, \"--local-timezone\", \"UTC\"]\n"
        # 10,000 tools in one list (its answer is over 1 MiB, the SDK's SSE event limit).
        "  many:\n"
        f"    command: [{json.dumps(str(fixture))}, \"--tools\", \"9990\", \"--name\", \"many\"]\n"
    )


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    """True once /health answers ok; False if the process exited (e.g. port taken)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200 and b'"ok":true' in resp.read().replace(b" ", b""):
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    pytest.fail(f"hangar-server not healthy after {START_TIMEOUT_S}s; log tail:\n{_log_tail(log)}")


def _server_bin() -> Path:
    server_bin = _bin_dir() / "hangar-server"
    if not os.access(server_bin, os.X_OK):
        pytest.fail(f"missing {server_bin}; build it or set HANGAR_BIN_DIR")
    return server_bin


@pytest.fixture(scope="session")
def hangar_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HangarServer]:
    server_bin = _server_bin()
    work = tmp_path_factory.mktemp("hangar")
    config = work / "config.yaml"
    _write_config(config, _bin_dir())
    with _run_hangar(server_bin, config, work) as server:
        yield server


@contextmanager
def _run_hangar(server_bin: Path, config: Path, work: Path) -> Iterator[HangarServer]:
    """Runs `server_bin` with `config` (data and logs under `work`) until the block ends, then
    stops it and fails if it did not exit cleanly or left provider processes behind."""
    key = "hgr_" + secrets.token_hex(16)
    env = {**os.environ, "HANGAR_ADMIN_KEY": key}
    env.pop("HANGAR_CONFIG", None)
    env.pop("HANGAR_DATA_DIR", None)
    env.pop("HANGAR_LISTEN", None)

    proc: subprocess.Popen[bytes] | None = None
    log = work / "server.log"
    url = ""
    for attempt in range(3):  # the free port may be grabbed between probe and bind
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = work / f"server-{attempt}.log"
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [str(server_bin), "--config", str(config), "--data-dir", str(work / f"data-{attempt}"),
                 "--listen", f"127.0.0.1:{port}"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Own session: every provider it spawns inherits this session id (even if it
                # puts itself in its own process group), so leftovers can be found later.
                start_new_session=True,
            )
        if _wait_healthy(proc, url, log):
            break
        proc = None
    if proc is None:
        pytest.fail(f"hangar-server exited during startup 3 times; last log:\n{_log_tail(log)}")

    try:
        yield HangarServer(url=url, key=key)
    finally:
        # Snapshot the server's descendants (pid + start time) before stopping it; the session
        # id check in `_still_running` also catches anything re-parented to init meanwhile.
        tracked = {p.pid: p for p in _descendants(proc.pid)}

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None

        # Providers may take a moment to exit after the server is gone.
        deadline = time.monotonic() + REAP_TIMEOUT_S
        left = _still_running(tracked, proc.pid)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = _still_running(tracked, proc.pid)
        for p in left:  # clean up so a failing run does not leak processes into the next one
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        problems = []
        if rc is None:
            problems.append(f"hangar-server did not exit within {STOP_TIMEOUT_S}s of SIGTERM (killed)")
        elif rc != 0:
            problems.append(f"hangar-server exited with status {rc} after SIGTERM")
        if left:
            problems.append(
                "processes left running after hangar-server exited (now killed):\n"
                + "\n".join(f"  pid={p.pid} ppid={p.ppid} {p.cmdline}" for p in left)
            )
        if problems:
            pytest.fail("\n".join(problems) + f"\nserver log tail:\n{_log_tail(log)}")


# --- a second server: third-party npm MCP servers ------------------------------------------


class RealServers(NamedTuple):
    """A Hangar whose providers are the npm reference servers `everything`, `filesystem`
    (allowed to use `fs_root` only) and `memory` (its graph in `memory_file`)."""

    url: str
    key: str
    fs_root: Path  # real path (symlinks resolved), as server-filesystem reports it
    memory_file: Path

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


FS_SEED_NAME = "hello.txt"
FS_SEED_TEXT = "Hello from a file the test created.\nSecond line: ünïcödé ✓\n"


def _npm_bin_dir() -> Path:
    default = REPO_ROOT / "tests" / "npm" / "node_modules" / ".bin"
    return Path(os.environ.get("HANGAR_NPM_BIN") or default).resolve()


def _write_real_config(path: Path, npm_bin: Path, fs_root: Path, memory_file: Path) -> None:
    exes = {name: npm_bin / f"mcp-server-{name}" for name in ("everything", "filesystem", "memory")}
    for exe in exes.values():
        if not os.access(exe, os.X_OK):
            pytest.fail(f"missing executable {exe} (run `npm ci` in tests/npm, or set HANGAR_NPM_BIN)")
    if shutil.which("node") is None:
        pytest.fail("the npm MCP servers need `node` on PATH")
    q = json.dumps  # JSON strings are valid YAML flow scalars
    path.write_text(
        "providers:\n"
        "  everything:\n"
        f"    command: [{q(str(exes['everything']))}, \"stdio\"]\n"
        "  filesystem:\n"
        f"    command: [{q(str(exes['filesystem']))}, {q(str(fs_root))}]\n"
        "  memory:\n"
        f"    command: [{q(str(exes['memory']))}]\n"
        f"    env: {{ MEMORY_FILE_PATH: {q(str(memory_file))} }}\n"
    )


@pytest.fixture(scope="session")
def real_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServers]:
    server_bin = _server_bin()
    work = tmp_path_factory.mktemp("hangar-real")
    fs_root = (work / "fs-root").resolve()
    fs_root.mkdir()
    (fs_root / FS_SEED_NAME).write_text(FS_SEED_TEXT, encoding="utf-8")
    memory_file = work / "memory" / "graph.jsonl"
    memory_file.parent.mkdir()
    config = work / "config.yaml"
    _write_real_config(config, _npm_bin_dir(), fs_root, memory_file)
    with _run_hangar(server_bin, config, work) as server:
        yield RealServers(url=server.url, key=server.key, fs_root=fs_root, memory_file=memory_file)
