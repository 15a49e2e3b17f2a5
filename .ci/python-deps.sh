#!/bin/sh
# Python tools the test suite uses: schemathesis drives tests/it/contract.rs.
set -eu
python3 -m pip install --quiet --disable-pip-version-check schemathesis requests
