"""Tool approvals with the official Python MCP SDK: a call held by an `ask`
policy waits (with progress notifications) while an operator answers with the
`hangar` CLI, then returns the tool's result, or a tool error on reject."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator

import anyio
import pytest
from mcp_types import TextContent

from conftest import HangarServer, _bin_dir
from test_interop import MODES, TIMEOUT_S, connect, texts

pytestmark = pytest.mark.anyio

PROVIDER = "fixture"
TOOL = "test_simple_text"  # used by no other interop test


def _api(server: HangarServer, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"{server.url}/api{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
        return json.loads(resp.read() or b"null")


def _cli(server: HangarServer, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_bin_dir() / "hangar"), "--url", server.url, "--key", key, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def reviewer_key(hangar_server: HangarServer) -> str:
    """A key of an operator: nobody answers their own held call, so the
    admin's calls are answered by someone else."""
    _api(hangar_server, "POST", "/auth/principals/reviewer/roles", {"role_id": "operator"})
    made = _api(hangar_server, "POST", "/auth/keys", {"principal_id": "reviewer", "name": "reviewer"})
    return made["raw_key"]


@pytest.fixture
def ask_policy(hangar_server: HangarServer) -> Iterator[None]:
    _api(hangar_server, "PUT", f"/auth/policies/{PROVIDER}/{TOOL}", {"role_id": "admin", "effect": "ask"})
    try:
        yield
    finally:
        _api(hangar_server, "DELETE", f"/auth/policies/{PROVIDER}/{TOOL}")


async def _pending_id(server: HangarServer) -> str:
    while True:
        listed = await anyio.to_thread.run_sync(_api, server, "GET", "/permissions")
        for p in listed["permissions"]:
            if p["provider"] == PROVIDER and p["tool"] == TOOL:
                return p["id"]
        await anyio.sleep(0.05)


async def _held_call(server: HangarServer, reviewer: str, mode: str, answer: list[str]):
    updates: list[tuple[float, float | None, str | None]] = []
    got_progress = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))
        got_progress.set()

    async def answer_when_waiting(request_id: list[str]) -> None:
        request_id.append(await _pending_id(server))
        await got_progress.wait()  # the caller hears that it waits
        done = await anyio.to_thread.run_sync(lambda: _cli(server, reviewer, *answer, request_id[0]))
        assert done.returncode == 0, done

    request_id: list[str] = []
    with anyio.fail_after(TIMEOUT_S):
        async with connect(server, mode) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(answer_when_waiting, request_id)
                result = await client.call_tool(f"{PROVIDER}__{TOOL}", {}, progress_callback=on_progress)
    assert updates, "no progress while the call was held"
    return result


@pytest.mark.parametrize("mode", MODES)
async def test_held_call_is_approved_with_the_cli(
    hangar_server: HangarServer, reviewer_key: str, mode: str, ask_policy: None
) -> None:
    result = await _held_call(hangar_server, reviewer_key, mode, ["approvals", "approve"])
    assert not result.is_error, result
    assert texts(result), result


async def test_held_call_is_rejected_with_the_cli(
    hangar_server: HangarServer, reviewer_key: str, ask_policy: None
) -> None:
    result = await _held_call(
        hangar_server, reviewer_key, "legacy", ["approvals", "reject", "--message", "not today"]
    )
    assert result.is_error, result
    text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
    assert "not today" in text, text
