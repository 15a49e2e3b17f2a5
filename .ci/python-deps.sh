#!/bin/sh
# Python tools the test suite uses: schemathesis drives tests/contract.rs.
set -eu
python3 -m pip install --quiet --disable-pip-version-check schemathesis requests
