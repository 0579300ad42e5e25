"""What idle 2025-era MCP sessions cost hangar-server in memory.

Starts `hangar-server` (release build, caps raised), opens N sessions with `initialize` +
`notifications/initialized` (32 at a time), waits 2 s and prints the server's RSS before
and after.

Usage (from the repository root, after `cargo build --release -p hangar-api -p hangar-fixture`):

    .venv/bin/python examples/bench/python/sessions_rss.py [N]      # default 10000
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("HANGAR_BIN_DIR", ROOT / "target" / "release")).resolve()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise SystemExit("no VmRSS")


async def main(n: int) -> None:
    key = "hgr_" + secrets.token_hex(16)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "hangar.yaml"
        cfg.write_text(
            f"providers:\n  fx:\n    command: [\"{BIN / 'hangar-fixture'}\"]\n"
            f"server:\n  max_sessions: {n + 100}\n  max_sessions_per_principal: {n + 100}\n"
            "  rate_limit: {requests: 1000000, per_seconds: 1}\n"
        )
        server = subprocess.Popen(
            [str(BIN / "hangar-server"), "--config", str(cfg), "--data-dir", f"{tmp}/data",
             "--listen", f"127.0.0.1:{port}"],
            env={**os.environ, "HANGAR_ADMIN_KEY": key, "RUST_LOG": "warn"},
        )
        try:
            for _ in range(500):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.02)
            time.sleep(1)
            url = f"http://127.0.0.1:{port}/mcp"
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                       "Accept": "application/json, text/event-stream"}
            init = ('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":'
                    '"2025-06-18","capabilities":{},"clientInfo":{"name":"rss","version":"1"}}}')
            before = rss_kib(server.pid)
            gate = asyncio.Semaphore(32)
            async with httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=32)) as c:
                async def one() -> None:
                    async with gate:
                        r = await c.post(url, headers=headers, content=init)
                        sid = r.headers["mcp-session-id"]
                        r = await c.post(url, content='{"jsonrpc":"2.0","method":"notifications/initialized"}',
                                         headers={**headers, "Mcp-Session-Id": sid,
                                                  "MCP-Protocol-Version": "2025-06-18"})
                        assert r.status_code == 202, r.status_code

                await asyncio.gather(*(one() for _ in range(n)))
            await asyncio.sleep(2)
            after = rss_kib(server.pid)
        finally:
            server.terminate()
            server.wait(10)
    print(f"{n} idle sessions: RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB "
          f"(+{(after - before) / 1024:.1f} MiB, {(after - before) * 1024 / n:.0f} bytes/session)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000))
