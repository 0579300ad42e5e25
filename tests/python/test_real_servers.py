"""Interop with real third-party MCP servers behind Hangar, driven by the official Python
MCP SDK in both protocol eras (see test_interop.py):

  * npm `@modelcontextprotocol/server-everything`: progress, sampling, elicitation,
    structured content, images, resources, prompts
  * npm `@modelcontextprotocol/server-filesystem`: allowed directories, reading, writing
  * npm `@modelcontextprotocol/server-memory`: a knowledge graph persisted to a file

All of them are 2025-era stdio servers; the `real_servers` fixture (conftest.py) runs them
as the providers `everything`, `filesystem` and `memory` of a Hangar of their own.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import anyio
import jsonschema
import mcp_types as types
import pytest

from conftest import FS_SEED_NAME, FS_SEED_TEXT, RealServers
from test_interop import MODERN, TIMEOUT_S, connect, mode, texts  # noqa: F401 (mode: a fixture)

pytestmark = pytest.mark.anyio

def ok(result: types.CallToolResult) -> types.CallToolResult:
    assert not result.is_error, result
    return result


def one_text(result: types.CallToolResult) -> str:
    found = texts(ok(result))
    assert len(found) == 1, result
    return found[0]


# --- server-everything ----------------------------------------------------------------------


async def test_everything_lists_its_tools(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
    expected = {
        "everything__echo",
        "everything__get-structured-content",
        "everything__get-tiny-image",
        "everything__trigger-long-running-operation",
        # Registered only when the client (Hangar) declares sampling / elicitation.
        "everything__trigger-sampling-request",
        "everything__trigger-elicitation-request",
    }
    assert expected <= tools.keys(), sorted(tools)
    long_running = tools["everything__trigger-long-running-operation"].input_schema
    assert long_running["properties"]["duration"]["type"] == "number", long_running
    assert long_running["properties"]["steps"]["type"] == "number", long_running
    sampling = tools["everything__trigger-sampling-request"].input_schema
    assert sampling["required"] == ["prompt"], sampling
    structured = tools["everything__get-structured-content"]
    assert structured.input_schema["properties"]["location"]["enum"] == ["New York", "Chicago", "Los Angeles"]
    assert structured.output_schema is not None, structured
    assert {"temperature", "conditions", "humidity"} <= structured.output_schema["properties"].keys()


async def test_everything_echo(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            result = await client.call_tool("everything__echo", {"message": f"héllo from {mode} ✓"})
    assert one_text(result) == f"Echo: héllo from {mode} ✓"


async def test_everything_progress_of_a_long_running_operation(real_servers: RealServers, mode: str) -> None:
    steps = 3
    updates: list[tuple[float, float | None]] = []
    all_seen = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total))
        if len(updates) == steps:
            all_seen.set()

    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            result = await client.call_tool(
                "everything__trigger-long-running-operation",
                {"duration": 0.3, "steps": steps},
                progress_callback=on_progress,
            )
            # The SDK runs progress callbacks in tasks of their own: wait for them (bounded by
            # fail_after), not for a fixed time.
            await all_seen.wait()
    assert one_text(result) == f"Long running operation completed. Duration: 0.3 seconds, Steps: {steps}."
    assert sorted(updates) == [(float(i), float(steps)) for i in range(1, steps + 1)], updates


async def test_everything_sampling(real_servers: RealServers, mode: str) -> None:
    requests: list[types.CreateMessageRequestParams] = []
    prompt = f"Say something nice about {mode}"

    async def sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        requests.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled for {mode}!"),
            model="test-model-7",
            stop_reason="endTurn",
        )

    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode, sampling_callback=sampling) as client:
            result = await client.call_tool("everything__trigger-sampling-request", {"prompt": prompt, "maxTokens": 42})

    # What the server asked for reached the client...
    assert len(requests) == 1, requests
    (asked,) = requests
    assert asked.max_tokens == 42
    assert asked.system_prompt == "You are a helpful test server."
    assert len(asked.messages) == 1 and asked.messages[0].role == "user"
    assert isinstance(asked.messages[0].content, types.TextContent)
    assert asked.messages[0].content.text == f"Resource trigger-sampling-request context: {prompt}"
    # ...and the client's answer reached the server, which quotes it as JSON.
    text = one_text(result)
    head, _, body = text.partition("\n")
    assert head == "LLM sampling result: ", text
    sampled = json.loads(body)
    assert sampled["role"] == "assistant", sampled
    assert sampled["model"] == "test-model-7", sampled
    assert sampled["stopReason"] == "endTurn", sampled
    assert sampled["content"] == {"type": "text", "text": f"sampled for {mode}!"}, sampled


ELICITED = {
    "name": "Ada Lovelace",
    "check": True,
    "email": "ada@example.com",
    "homepage": "https://example.com/ada",
    "birthdate": "1815-12-10",
    "integer": 7,
    "number": 2.5,
    "untitledSingleSelectEnum": "Joey",
    "titledSingleSelectEnum": "hero-3",
}


async def test_everything_elicitation(real_servers: RealServers, mode: str) -> None:
    requests: list[Any] = []

    async def elicit(ctx: Any, params: Any) -> types.ElicitResult:
        requests.append(params)
        return types.ElicitResult(action="accept", content=ELICITED)

    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode, elicitation_callback=elicit) as client:
            result = await client.call_tool("everything__trigger-elicitation-request", {})

    assert len(requests) == 1, requests
    (asked,) = requests
    assert isinstance(asked, types.ElicitRequestFormParams), asked
    assert asked.message == "Please provide inputs for the following fields:"
    schema = asked.requested_schema
    assert schema["required"] == ["name"], schema
    jsonschema.validate(ELICITED, schema)  # the answer is one the schema asked for

    found = texts(ok(result))
    assert found[0] == "✅ User provided the requested information!", found
    assert found[1].splitlines() == [
        "User inputs:",
        "- Name: Ada Lovelace",
        "- Agreed to terms: true",
        "- Email: ada@example.com",
        "- Homepage: https://example.com/ada",
        "- Birthdate: 1815-12-10",
        "- Favorite Integer: 7",
        "- Favorite Number: 2.5",
    ], found
    head, _, raw = found[2].partition(": ")
    assert head == "\nRaw result", found
    assert json.loads(raw) == {"action": "accept", "content": ELICITED}


@pytest.mark.parametrize(
    ("action", "said"),
    [("decline", "❌ User declined to provide the requested information."), ("cancel", "⚠️ User cancelled the elicitation dialog.")],
    ids=["decline", "cancel"],
)
async def test_everything_elicitation_not_accepted(real_servers: RealServers, mode: str, action: str, said: str) -> None:
    async def elicit(ctx: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action=action)

    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode, elicitation_callback=elicit) as client:
            result = await client.call_tool("everything__trigger-elicitation-request", {})
    found = texts(ok(result))
    assert len(found) == 2 and found[0] == said, found
    head, _, raw = found[1].partition(": ")
    assert head == "\nRaw result", found
    assert json.loads(raw) == {"action": action}


async def test_everything_structured_content(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            result = await client.call_tool("everything__get-structured-content", {"location": "Chicago"})
    weather = {"temperature": 36, "conditions": "Light rain / drizzle", "humidity": 82}
    assert result.structured_content == weather, result
    assert json.loads(one_text(result)) == weather  # the backward-compatible text block


async def test_everything_tiny_image(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            result = await client.call_tool("everything__get-tiny-image", {})
    ok(result)
    assert [c.type for c in result.content] == ["text", "image", "text"], result
    assert texts(result) == ["Here's the image you requested:", "The image above is the MCP logo."]
    image = result.content[1]
    assert isinstance(image, types.ImageContent)
    assert image.mime_type == "image/png"
    png = base64.b64decode(image.data, validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:16]
    assert png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (20, 20)  # a 20x20 logo


async def test_everything_lists_resources(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            resources = {str(r.uri): r for r in (await client.list_resources()).resources}
            templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}
    features = resources.get("demo://resource/static/document/features.md")
    assert features is not None, sorted(resources)
    assert features.name == "features.md"
    assert features.mime_type == "text/markdown"
    assert "demo://resource/static/document/instructions.md" in resources, sorted(resources)
    assert {"demo://resource/dynamic/text/{resourceId}", "demo://resource/dynamic/blob/{resourceId}"} <= templates.keys()
    assert templates["demo://resource/dynamic/text/{resourceId}"].name == "Dynamic Text Resource"


async def test_everything_reads_resources(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            static = await client.read_resource("demo://resource/static/document/features.md")
            text = await client.read_resource("demo://resource/dynamic/text/7")
            blob = await client.read_resource("demo://resource/dynamic/blob/2")

    (doc,) = static.contents
    assert isinstance(doc, types.TextResourceContents), doc
    assert str(doc.uri) == "demo://resource/static/document/features.md"
    assert doc.mime_type == "text/markdown"
    assert doc.text.startswith("# Everything Server - Features\n"), doc.text[:200]

    (item,) = text.contents
    assert isinstance(item, types.TextResourceContents), item
    assert str(item.uri) == "demo://resource/dynamic/text/7"
    assert item.text.startswith("Resource 7: This is a plaintext resource created at "), item.text

    (item,) = blob.contents
    assert isinstance(item, types.BlobResourceContents), item
    assert str(item.uri) == "demo://resource/dynamic/blob/2"
    decoded = base64.b64decode(item.blob, validate=True).decode()
    assert decoded.startswith("Resource 2: This is a base64 blob created at "), decoded


async def test_everything_lists_prompts(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert {"everything__simple-prompt", "everything__args-prompt"} <= prompts.keys(), sorted(prompts)
    args = {a.name: a.required for a in prompts["everything__args-prompt"].arguments or []}
    assert args == {"city": True, "state": False}, prompts["everything__args-prompt"]


async def test_everything_gets_a_prompt_with_arguments(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            result = await client.get_prompt("everything__args-prompt", {"city": "Paris", "state": "Texas"})
    assert len(result.messages) == 1, result
    (message,) = result.messages
    assert message.role == "user"
    assert isinstance(message.content, types.TextContent), message
    assert message.content.text == "What's weather in Paris, Texas?"


async def test_everything_completes_prompt_arguments(real_servers: RealServers, mode: str) -> None:
    ref = types.PromptReference(type="ref/prompt", name="everything__completable-prompt")
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            departments = await client.complete(ref, {"name": "department", "value": "S"})
            # The second argument's values depend on the first, sent as context.
            names = await client.complete(ref, {"name": "name", "value": ""}, {"department": "Sales"})
    assert departments.completion.values == ["Sales", "Support"], departments
    assert names.completion.values == ["David", "Eve", "Frank"], names


# --- server-filesystem ----------------------------------------------------------------------


async def test_filesystem_lists_allowed_directories(real_servers: RealServers, mode: str) -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            result = await client.call_tool("filesystem__list_allowed_directories", {})
    assert one_text(result).splitlines() == ["Allowed directories:", str(real_servers.fs_root)]


async def test_filesystem_reads_a_file(real_servers: RealServers, mode: str) -> None:
    path = real_servers.fs_root / FS_SEED_NAME
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            listing = await client.call_tool("filesystem__list_directory", {"path": str(real_servers.fs_root)})
            result = await client.call_tool("filesystem__read_text_file", {"path": str(path)})
    assert f"[FILE] {FS_SEED_NAME}" in one_text(listing).splitlines(), listing
    assert one_text(result) == FS_SEED_TEXT


async def test_filesystem_writes_a_file_then_reads_it_back(real_servers: RealServers, mode: str) -> None:
    path = real_servers.fs_root / f"written-{mode}.txt"
    content = f"written through Hangar by a {mode} client\nzwei Zeilen, ✓\n"
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            wrote = await client.call_tool("filesystem__write_file", {"path": str(path), "content": content})
            assert one_text(wrote) == f"Successfully wrote to {path}"
            result = await client.call_tool("filesystem__read_text_file", {"path": str(path)})
    assert one_text(result) == content
    assert path.read_text(encoding="utf-8") == content  # really on disk


async def test_filesystem_refuses_a_path_outside_its_directories(real_servers: RealServers, mode: str) -> None:
    outside = real_servers.fs_root.parent / "config.yaml"  # Hangar's config: exists, not allowed
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            result = await client.call_tool("filesystem__read_text_file", {"path": str(outside)})
    assert result.is_error is True, result
    assert "outside allowed directories" in " ".join(texts(result)), result


# --- server-memory --------------------------------------------------------------------------


async def test_memory_creates_entities_then_reads_the_graph(real_servers: RealServers, mode: str) -> None:
    ada, engine = f"Ada Lovelace ({mode})", f"Analytical Engine ({mode})"
    entities = [
        {"name": ada, "entityType": "person", "observations": ["wrote the first program", "born 1815"]},
        {"name": engine, "entityType": "machine", "observations": ["designed by Babbage"]},
    ]
    relation = {"from": ada, "to": engine, "relationType": "programmed"}
    with anyio.fail_after(TIMEOUT_S):
        async with connect(real_servers, mode) as client:
            created = await client.call_tool("memory__create_entities", {"entities": entities})
            related = await client.call_tool("memory__create_relations", {"relations": [relation]})
            graph_result = await client.call_tool("memory__read_graph", {})

    assert json.loads(one_text(created)) == entities
    assert json.loads(one_text(related)) == [relation]
    graph = json.loads(one_text(graph_result))
    assert graph_result.structured_content == graph
    ours = {e["name"]: e for e in graph["entities"] if e["name"] in (ada, engine)}
    assert ours == {e["name"]: e for e in entities}, graph
    assert relation in graph["relations"], graph
    # MEMORY_FILE_PATH (the provider's `env:`) reached the server: the graph is in that file.
    saved = [json.loads(line) for line in real_servers.memory_file.read_text().splitlines() if line]
    assert {"type": "entity", **entities[0]} in saved, saved
    assert {"type": "relation", **relation} in saved, saved
