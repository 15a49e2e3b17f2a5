#!/bin/sh
# Python tools the test suite uses: schemathesis drives tests/it/contract.rs, the official MCP
# SDK (mcp, with its httpx2) drives tests/it/mcp.rs.
set -eu
python3 -m pip install --quiet --disable-pip-version-check schemathesis requests "mcp>=2.3,<3"
