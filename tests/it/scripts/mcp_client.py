"""Drives /mcp with the official MCP Python SDK for tests/it/mcp.rs: connects with a Bearer key in
one protocol mode, lists the tools, calls each one (and the error cases), prints JSON."""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def result(r):
    return {
        "isError": bool(r.is_error),
        "structured": r.structured_content,
        "text": "\n".join(c.text for c in r.content if getattr(c, "type", "") == "text"),
    }


async def main(url, key, mode, push_id, foreign_id):
    out = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            out["protocolVersion"] = client.protocol_version
            tools = await client.list_tools()
            out["tools"] = {
                t.name: {"input": t.input_schema, "output": t.output_schema} for t in tools.tools
            }
            out["list"] = result(await client.call_tool("list_pushes", {"limit": 1}))
            cursor = (out["list"]["structured"] or {}).get("pagination", {}).get("nextCursor")
            out["next"] = result(await client.call_tool("list_pushes", {"limit": 1, "cursor": cursor}))
            out["get"] = result(await client.call_tool("get_push", {"id": push_id}))
            out["foreign"] = result(await client.call_tool("get_push", {"id": foreign_id}))
            out["badDate"] = result(await client.call_tool("list_pushes", {"since": "yesterday"}))
            out["typo"] = result(await client.call_tool("list_pushes", {"brnch": "main"}))
    print(json.dumps(out))


asyncio.run(main(*sys.argv[1:6]))
