"""Drives /mcp with the official MCP Python SDK for tests/it/mcp.rs: connects with a Bearer key in
one protocol mode, lists the tools, makes the calls it is given, prints JSON.

Arguments: URL KEY MODE CALLS, where CALLS is a JSON list of [label, tool, arguments]; an
argument "$next:LABEL" is the `pagination.nextCursor` of the call labelled LABEL."""

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


def resolve(args, results):
    out = {}
    for name, value in args.items():
        if isinstance(value, str) and value.startswith("$next:"):
            earlier = results[value[len("$next:"):]]["structured"] or {}
            value = earlier.get("pagination", {}).get("nextCursor")
        out[name] = value
    return out


async def main(url, key, mode, calls):
    out = {"results": {}}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            out["protocolVersion"] = client.protocol_version
            tools = await client.list_tools()
            out["tools"] = {
                t.name: {"input": t.input_schema, "output": t.output_schema} for t in tools.tools
            }
            for label, tool, args in json.loads(calls):
                args = resolve(args, out["results"])
                out["results"][label] = result(await client.call_tool(tool, args))
    print(json.dumps(out))


asyncio.run(main(*sys.argv[1:5]))
