#!/bin/sh
# Python tools the test suite uses: schemathesis drives tests/it/contract.rs; standardwebhooks
# (the reference library) checks the generic webhook signatures in tests/it/notify.rs;
# feedparser reads the Atom feed in tests/it/live.rs; the official MCP SDK (mcp, with its
# httpx2) drives tests/it/mcp.rs.
set -eu
python3 -m pip install --quiet --disable-pip-version-check schemathesis requests standardwebhooks feedparser "mcp>=2.3,<3"
