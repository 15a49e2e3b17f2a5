#!/usr/bin/env bash
# Builds the static release binary for x86_64-unknown-linux-musl, checks that it is static, and
# smoke-tests it: serve, create a project and a key, send a signed GitHub push, read it back,
# scrape /metrics, take an online backup, stop with SIGTERM.
#
# Usage: bash .ci/musl-smoke.sh            (build, then test)
#        BIN=path/to/binary bash .ci/musl-smoke.sh   (test an existing binary, skip the build)
#        BIN=target/debug/git-push-tracker ALLOW_DYNAMIC=1 bash .ci/musl-smoke.sh   (try the
#        smoke test on a dev build)
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-musl

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'musl-smoke: FAIL: %s\n' "$*" >&2; exit 1; }

if [[ -z "${BIN:-}" ]]; then
    step "toolchain"
    if ! command -v musl-gcc >/dev/null; then
        SUDO=""
        [[ "$(id -u)" -ne 0 ]] && SUDO=sudo
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq musl-tools
    fi
    if ! rustup target list --installed | grep -qx "$TARGET"; then
        rustup target add "$TARGET"
    fi

    step "cargo build --release --target $TARGET"
    cargo build --release --locked --target "$TARGET"
    BIN="${CARGO_TARGET_DIR:-target}/$TARGET/release/git-push-tracker"
fi
[[ -x "$BIN" ]] || fail "no binary at $BIN"

step "static?"
ldd_out="$(ldd "$BIN" 2>&1 || true)"
echo "$ldd_out"
if ! grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    [[ "${ALLOW_DYNAMIC:-}" == 1 ]] || fail "$BIN is dynamically linked"
fi
ls -l "$BIN"
"$BIN" --version

step "smoke test"
tmp="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin_token="smoke-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export PUSH_TRACKER_DB="$tmp/smoke.db"
unset GEMINI_API_KEY OPENAI_API_KEY PUSH_TRACKER_OPENAI_BASE_URL PUSH_TRACKER_SUMMARIZER || true

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

project_json="$("$BIN" project create smoke --json --public-url "$base")"
webhook_url="$(json_field webhookUrl <<<"$project_json")"
secret="$(json_field webhookSecret <<<"$project_json")"
api_key="$("$BIN" key create smoke --label smoke --json | json_field key)"

PUSH_TRACKER_ADMIN_TOKEN="$admin_token" "$BIN" serve --listen "127.0.0.1:$port" \
    --public-url "$base" --summarizer builtin >"$tmp/server.log" 2>&1 &
server_pid=$!

# Polls a command until it succeeds or the deadline (seconds) passes.
poll() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        (( SECONDS < deadline )) || return 1
        kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log"; fail "server exited"; }
        sleep 0.1
    done
}
poll 20 curl -fsS -o /dev/null "$base/healthz" || { cat "$tmp/server.log"; fail "server never became healthy"; }

fixture=tests/fixtures/github/push.woodpecker-HookPush.json
signature="sha256=$(python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2],"rb").read(), hashlib.sha256).hexdigest())' "$secret" "$fixture")"
status="$(curl -sS -o "$tmp/push.json" -w '%{http_code}' -X POST "$webhook_url" \
    -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
    -H 'X-GitHub-Delivery: smoke-1' -H "X-Hub-Signature-256: $signature" \
    --data-binary "@$fixture")"
[[ "$status" == 201 ]] || { cat "$tmp/push.json"; fail "webhook answered $status"; }

has_push() {
    curl -fsS -H "Authorization: Bearer $api_key" "$base/api/v1/pushes" >"$tmp/pushes.json" &&
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["pagination"]["total"]==1 and d["pushes"][0]["branch"]=="main" else 1)' "$tmp/pushes.json"
}
poll 20 has_push || { cat "$tmp/pushes.json"; fail "the push never showed up in the API"; }
cat "$tmp/pushes.json"; echo

curl -fsS -H "Authorization: Bearer $admin_token" "$base/metrics" >"$tmp/metrics.txt"
grep -q '^git_push_tracker_webhooks_received_total{provider="github",outcome="stored"} 1$' "$tmp/metrics.txt" ||
    { cat "$tmp/metrics.txt"; fail "/metrics did not count the push"; }

"$BIN" backup "$tmp/backup.db"
python3 -c 'import sqlite3,sys; n=sqlite3.connect(sys.argv[1]).execute("select count(*) from pushes").fetchone()[0]; sys.exit(0 if n==1 else 1)' "$tmp/backup.db" ||
    fail "the backup does not hold the push"

kill -TERM "$server_pid"
wait "$server_pid" || { cat "$tmp/server.log"; fail "server did not stop cleanly on SIGTERM"; }
server_pid=""
echo "musl-smoke: OK"
