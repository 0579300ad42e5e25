"""The call-path benchmark with the official Python MCP SDK as the client.

Side by side, in one run, the same client calls the fixture's `echo` tool:

  direct        the SDK over stdio to one `hangar-fixture` process
  floor         the fixture serving Streamable HTTP itself (`--http`, rmcp's stack)
  hangar        `hangar-server` in front of one `hangar-fixture` (stdio)

each HTTP row in both protocol eras (`legacy` = 2025 initialize + session, and the
stateless 2026-07-28). Printed per row: p50/p99 of sequential calls, throughput of
8 concurrent clients, and the server's CPU per call (utime+stime of the serving
process, read from /proc around the sequential run: the fixture's own for `floor`,
hangar-server's for `hangar`; the provider behind Hangar is not counted).

Usage (from the repository root, after `cargo build --release -p hangar-api -p hangar-fixture`):

    .venv/bin/python examples/bench/python/bench_sdk.py [--calls 300] [--clients 8] [--per-client 100]

Environment: HANGAR_BIN_DIR (default target/release).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("HANGAR_BIN_DIR", ROOT / "target" / "release")).resolve()
TICKS = os.sysconf("SC_CLK_TCK")
MODES = ["legacy", "2026-07-28"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / TICKS


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise SystemExit(f"nothing listens on {port}")


def connector(url: str | None, key: str | None, http: httpx2.AsyncClient | None):
    if url is None:
        return stdio_client(StdioServerParameters(command=str(BIN / "hangar-fixture")))
    return streamable_http_client(url, http_client=http)


async def sequential(url, key, mode, calls, pid):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(connector(url, key, http), mode=mode) as client:
            for _ in range(max(20, calls // 10)):
                await client.call_tool("echo" if key is None else "fx__echo", {"text": "hello hangar"})
            name = "echo" if key is None else "fx__echo"
            before = cpu_ms(pid) if pid else 0.0
            lat = []
            for _ in range(calls):
                t = time.perf_counter()
                r = await client.call_tool(name, {"text": "hello hangar"})
                lat.append((time.perf_counter() - t) * 1000)
                assert not r.is_error
            cpu = (cpu_ms(pid) - before) / calls if pid else None
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1], cpu


async def throughput(url, key, mode, clients, per_client):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    name = "echo" if key is None else "fx__echo"

    async def one(http):
        async with Client(connector(url, key, http), mode=mode) as client:
            await client.call_tool(name, {"text": "warm"})
            await start.wait()
            for _ in range(per_client):
                await client.call_tool(name, {"text": "hello hangar"})

    start = anyio.Event()
    async with httpx2.AsyncClient(headers=headers, timeout=60, limits=httpx2.Limits(max_connections=clients * 2)) as http:
        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(one, http)
            await anyio.sleep(1.0)
            t = time.perf_counter()
            start.set()
        elapsed = time.perf_counter() - t
    return clients * per_client / elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-client", type=int, default=100)
    args = ap.parse_args()
    key = "hgr_" + secrets.token_hex(16)
    procs = []
    rows = []
    try:
        fport = free_port()
        fixture = subprocess.Popen([str(BIN / "hangar-fixture"), "--http", f"127.0.0.1:{fport}"], stderr=subprocess.DEVNULL)
        procs.append(fixture)
        wait_port(fport, fixture)
        tmp = tempfile.TemporaryDirectory()
        cfg = Path(tmp.name) / "hangar.yaml"
        cfg.write_text(
            "providers:\n  fx:\n"
            f"    command: [\"{BIN / 'hangar-fixture'}\"]\n"
            "    idle_ttl_s: 0\n    health_check_interval_s: 0\n"
            "server:\n  rate_limit: {requests: 1000000, per_seconds: 1}\n"
        )
        hport = free_port()
        hangar = subprocess.Popen(
            [str(BIN / "hangar-server"), "--config", str(cfg), "--data-dir", str(Path(tmp.name) / "data"),
             "--listen", f"127.0.0.1:{hport}"],
            env={**os.environ, "HANGAR_ADMIN_KEY": key, "RUST_LOG": "warn"},
        )
        procs.append(hangar)
        wait_port(hport, hangar)

        p50, p99, _ = await sequential(None, None, "legacy", args.calls, None)
        rows.append(("direct (stdio)", "legacy", p50, p99, None, await throughput(None, None, "legacy", args.clients, args.per_client)))
        for mode in MODES:
            floor = f"http://127.0.0.1:{fport}/mcp"
            p50, p99, cpu = await sequential(floor, None, mode, args.calls, fixture.pid)
            tput = await throughput(floor, None, mode, args.clients, args.per_client)
            rows.append(("floor (fixture --http)", mode, p50, p99, cpu, tput))
            url = f"http://127.0.0.1:{hport}/mcp"
            p50, p99, cpu = await sequential(url, key, mode, args.calls, hangar.pid)
            tput = await throughput(url, key, mode, args.clients, args.per_client)
            rows.append(("hangar -> fixture (stdio)", mode, p50, p99, cpu, tput))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)

    print(f"# bench_sdk: official Python SDK, tools/call echo, {args.calls} sequential calls;"
          f" {args.clients} clients x {args.per_client} for throughput")
    print(f"{'row':28} {'era':11} {'p50 ms':>8} {'p99 ms':>8} {'cpu/call ms':>12} {'calls/s':>8}")
    for name, mode, p50, p99, cpu, tput in rows:
        cpu_s = f"{cpu:12.3f}" if cpu is not None else f"{'-':>12}"
        print(f"{name:28} {mode:11} {p50:8.3f} {p99:8.3f} {cpu_s} {tput:8.0f}")
    print("# ratios, hangar / floor (same era)")
    by = {(n.split()[0], m): (p50, cpu, tput) for n, m, p50, _, cpu, tput in rows}
    for mode in MODES:
        h, f = by[("hangar", mode)], by[("floor", mode)]
        print(f"{mode:11} p50 {h[0] / f[0]:.2f}x   cpu/call {h[1] / f[1]:.2f}x   throughput {h[2] / f[2]:.2f}x")


if __name__ == "__main__":
    try:
        anyio.run(main)
    except KeyboardInterrupt:
        sys.exit(130)
