#!/usr/bin/env bash
# Fuzzes the REST API against its own OpenAPI document with schemathesis
# (tests/python/requirements.txt): starts the freshly built hangar-server with the example
# config (examples/config/hangar.yaml, pointed at the debug hangar-fixture) on a free loopback
# port with a scratch data dir, then lets schemathesis generate requests for every operation of
# /openapi.json and check that no answer is a 5xx or contradicts the document (undocumented
# status, wrong content type, body not matching the schema). /mcp is documented but not fuzzed:
# it is the MCP protocol endpoint (rmcp), tested by the interop tests.
#
# Called by scripts/test.sh after pytest; runs on its own too: bash scripts/fuzz-api.sh
# Environment:
#   HANGAR_PYTHON        Python with schemathesis (default .venv/bin/python)
#   HANGAR_BIN_DIR       directory with hangar-server and hangar-fixture (default target/debug)
#   FUZZ_MAX_EXAMPLES    test cases per operation and phase (default 50)
#   FUZZ_SEED            fixed seed, to replay a run
#   FUZZ_TIMEOUT_S       hard limit for the whole schemathesis run (default 180)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${HANGAR_PYTHON:-$PWD/.venv/bin/python}"
BIN_DIR="${HANGAR_BIN_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/debug}"
# Absolute: schemathesis runs from a scratch directory.
[[ "$PYTHON" == /* || "$PYTHON" != */* ]] || PYTHON="$PWD/$PYTHON"
[[ "$BIN_DIR" == /* ]] || BIN_DIR="$PWD/$BIN_DIR"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-50}"
TIMEOUT_S="${FUZZ_TIMEOUT_S:-180}"
EXAMPLE_CONFIG=examples/config/hangar.yaml
EXAMPLE_FIXTURE=target/release/hangar-fixture

for exe in "$BIN_DIR/hangar-server" "$BIN_DIR/hangar-fixture"; do
    if [[ ! -x "$exe" ]]; then
        echo "error: missing $exe (cargo build --workspace)" >&2
        exit 1
    fi
done
if ! "$PYTHON" -c 'import schemathesis' 2>/dev/null; then
    echo "error: no schemathesis in $PYTHON; run: $PYTHON -m pip install -r tests/python/requirements.txt" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/hangar-fuzz.XXXXXX")"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        # hangar-server stops its providers on SIGTERM; give it the time it needs.
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The example config, with its fixture path pointed at the one just built.
if ! grep -q "$EXAMPLE_FIXTURE" "$EXAMPLE_CONFIG"; then
    echo "error: $EXAMPLE_CONFIG no longer mentions $EXAMPLE_FIXTURE; update $0" >&2
    exit 1
fi
sed "s#$EXAMPLE_FIXTURE#$BIN_DIR/hangar-fixture#" "$EXAMPLE_CONFIG" >"$work/hangar.yaml"

key="hgr_$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')"

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 0: healthy; 1: the server exited (e.g. the port was taken); 2: timeout.
wait_healthy() {
    "$PYTHON" - "$1" "$server_pid" <<'EOF'
import json, os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            if r.status == 200 and json.load(r).get("ok") is True:
                sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.1)
sys.exit(2)
EOF
}

url=""
for attempt in 1 2 3; do
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    HANGAR_ADMIN_KEY="$key" RUST_LOG="${RUST_LOG:-warn}" "$BIN_DIR/hangar-server" \
        --config "$work/hangar.yaml" --data-dir "$work/data-$attempt" --listen "127.0.0.1:$port" \
        >"$work/server.log" 2>&1 &
    server_pid=$!
    rc=0
    wait_healthy "$url" || rc=$?
    if [[ $rc -eq 0 ]]; then
        break
    fi
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    if [[ $rc -eq 2 || $attempt -eq 3 ]]; then
        echo "error: hangar-server did not become healthy; log tail:" >&2
        tail -n 40 "$work/server.log" >&2
        exit 1
    fi
done
echo "hangar-server on $url (pid $server_pid, data in $work)"

seed_args=()
if [[ -n "${FUZZ_SEED:-}" ]]; then
    seed_args=(--seed "$FUZZ_SEED")
fi

config_file="$PWD/scripts/schemathesis.toml"
start=$SECONDS
rc=0
# Run from the scratch dir: hypothesis and schemathesis keep their caches in the working directory.
# GET /api/events is an SSE stream that stays open by design: a request/response fuzzer can only
# time out on it (its parameters are tested in tests/tests/observability.rs instead).
(cd "$work" && exec timeout --kill-after=10 "$TIMEOUT_S" \
    "$PYTHON" -m schemathesis.cli --config-file "$config_file" \
    run "$url/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /mcp \
    --exclude-path /api/events \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout 20 \
    --workers 2 \
    --generation-database none \
    --no-color \
    "${seed_args[@]}") || rc=$?
echo "schemathesis finished in $((SECONDS - start)) s (exit $rc)"
if [[ $rc -ne 0 ]]; then
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "error: schemathesis did not finish within ${TIMEOUT_S} s" >&2
    else
        echo "error: schemathesis found problems (exit $rc); server log tail:" >&2
    fi
    tail -n 40 "$work/server.log" >&2
fi
exit "$rc"
