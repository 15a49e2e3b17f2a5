#!/usr/bin/env bash
# Fetch AI-generated push summaries for your project.
# Usage: TRACKER_URL=http://127.0.0.1:8080 TRACKER_API_KEY=gpt_... ./examples/curl.sh
set -euo pipefail
curl -fsS -H "Authorization: Bearer ${TRACKER_API_KEY:?set TRACKER_API_KEY to a project key}" \
  "${TRACKER_URL:-http://127.0.0.1:8080}/api/v1/pushes"
echo
