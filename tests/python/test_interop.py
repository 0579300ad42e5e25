"""Interop tests: the official Python MCP SDK against a real hangar-server.

Every MCP test runs in both protocol eras the SDK speaks:
  * "legacy"      -> `Client(..., mode="legacy")`: initialize handshake, Mcp-Session-Id (2025-11-25)
  * "2026-07-28"  -> `Client(..., mode="2026-07-28")`: stateless per-request envelope, no initialize
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent, TextResourceContents
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from conftest import HangarServer

pytestmark = pytest.mark.anyio

TIMEOUT_S = 30
MODERN = "2026-07-28"
MODES = ["legacy", MODERN]


@asynccontextmanager
async def connect(server: HangarServer, mode: str, **callbacks: Any) -> AsyncIterator[Client]:
    """An SDK client of `server`'s /mcp in `mode`; `callbacks` go to `Client` (sampling, elicitation...)."""
    async with httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {server.key}"}, timeout=httpx2.Timeout(TIMEOUT_S)
    ) as http:
        async with Client(
            streamable_http_client(server.mcp_url, http_client=http),
            mode=mode,
            read_timeout_seconds=TIMEOUT_S,
            **callbacks,
        ) as client:
            if mode == "legacy":
                assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
            else:
                assert client.protocol_version == mode
            yield client


def texts(result) -> list[str]:
    return [c.text for c in result.content if isinstance(c, TextContent)]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


# --- MCP through the SDK ---------------------------------------------------------------------


async def test_list_tools(hangar_server: HangarServer, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
    assert {"fixture__add", "fixture__echo", "time__get_current_time"} <= names, sorted(names)


async def test_a_list_of_ten_thousand_tools(hangar_server: HangarServer, mode: str) -> None:
    # Over 1 MiB: as one SSE event the SDK would refuse it; Hangar answers JSON.
    with anyio.fail_after(TIMEOUT_S * 2):
        async with connect(hangar_server, mode) as client:
            tools = (await client.list_tools()).tools
    names = {t.name for t in tools}
    assert len([n for n in names if n.startswith("many__bulk_")]) == 9990, len(names)
    assert "fixture__echo" in names


async def test_call_fixture_add(hangar_server: HangarServer, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            result = await client.call_tool("fixture__add", {"a": 2, "b": 3})
    assert not result.is_error
    assert texts(result) == ["5"]


async def test_call_fixture_echo(hangar_server: HangarServer, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            result = await client.call_tool("fixture__echo", {"text": "héllo, hangar"})
    assert not result.is_error
    assert "héllo, hangar" in " ".join(texts(result))


async def test_call_third_party_time_server(hangar_server: HangarServer, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            result = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
    assert not result.is_error, result
    text = " ".join(texts(result))
    assert "UTC" in text, text
    payload = json.loads(text)
    assert payload["timezone"] == "UTC"
    datetime.fromisoformat(payload["datetime"])  # a real ISO datetime


async def test_tool_error_result(hangar_server: HangarServer, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            result = await client.call_tool("fixture__test_error_handling", {})
    assert result.is_error is True
    assert texts(result), "an isError result should still explain the error"


async def test_unknown_tool(hangar_server: HangarServer, mode: str) -> None:
    # Hangar answers an unknown tool with a JSON-RPC error (-32602 Invalid params, as the
    # spec's "protocol error" for unknown tools), which the SDK raises as MCPError.
    name = "fixture__no_such_tool"
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            with pytest.raises(MCPError) as err:
                await client.call_tool(name, {})
            # The session is still usable afterwards.
            assert texts(await client.call_tool("fixture__add", {"a": 1, "b": 1})) == ["2"]
    assert err.value.code == -32602, err.value
    assert name in str(err.value)


async def test_progress_notifications(hangar_server: HangarServer, mode: str) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            result = await client.call_tool("fixture__sleep", {"ms": 300}, progress_callback=on_progress)
    assert not result.is_error, result
    assert len(updates) >= 1, "no progress notification reached the client"
    progresses = [p for p, _, _ in updates]
    assert progresses == sorted(progresses), updates


async def test_read_resource(hangar_server: HangarServer, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            result = await client.read_resource("test://static-text")
    assert len(result.contents) == 1
    content = result.contents[0]
    assert isinstance(content, TextResourceContents)
    assert str(content.uri) == "test://static-text"
    assert content.text


async def test_list_prompts(hangar_server: HangarServer, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            names = {p.name for p in (await client.list_prompts()).prompts}
    assert "fixture__test_simple_prompt" in names, sorted(names)


async def test_get_prompt(hangar_server: HangarServer, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(hangar_server, mode) as client:
            result = await client.get_prompt("fixture__test_simple_prompt")
    assert result.messages
    first = result.messages[0]
    assert first.role == "user"
    assert isinstance(first.content, TextContent) and first.content.text


async def test_auto_mode_picks_2026(hangar_server: HangarServer) -> None:
    # The SDK's default mode probes `server/discover`; Hangar speaks 2026-07-28, so it must win.
    with anyio.fail_after(TIMEOUT_S):
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {hangar_server.key}"}) as http:
            async with Client(streamable_http_client(hangar_server.mcp_url, http_client=http)) as client:
                assert client.protocol_version == MODERN
                assert texts(await client.call_tool("fixture__add", {"a": 2, "b": 3})) == ["5"]


# --- raw HTTP ---------------------------------------------------------------------------------

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "hangar-pytest", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def auth(server: HangarServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


async def post_mcp(server: HangarServer, headers: dict[str, str], **body: object) -> httpx2.Response:
    """One raw POST /mcp with the Streamable HTTP headers plus `headers`, bounded in time."""
    with anyio.fail_after(TIMEOUT_S):
        async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
            return await http.post(server.mcp_url, headers={**MCP_HEADERS, **headers}, **body)


async def test_http_invalid_json_is_client_error(hangar_server: HangarServer) -> None:
    resp = await post_mcp(hangar_server, auth(hangar_server), content=b"{not json")
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)


async def test_http_missing_auth_is_401(hangar_server: HangarServer) -> None:
    resp = await post_mcp(hangar_server, {}, json=INIT)
    assert resp.status_code == 401, (resp.status_code, resp.text)
    assert resp.headers.get("www-authenticate", "").lower().startswith("bearer")


async def test_http_wrong_key_is_401(hangar_server: HangarServer) -> None:
    resp = await post_mcp(hangar_server, {"Authorization": "Bearer hgr_not_a_real_key"}, json=INIT)
    assert resp.status_code == 401, (resp.status_code, resp.text)


async def test_http_foreign_origin_is_403(hangar_server: HangarServer) -> None:
    resp = await post_mcp(hangar_server, {**auth(hangar_server), "Origin": "http://evil.example"}, json=INIT)
    assert resp.status_code == 403, (resp.status_code, resp.text)


async def test_http_health_needs_no_auth(hangar_server: HangarServer) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
            resp = await http.get(f"{hangar_server.url}/health")
    assert resp.status_code == 200
    assert resp.json()["ok"] is True
