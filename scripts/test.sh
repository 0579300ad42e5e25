#!/usr/bin/env bash
# The project's test command (README: `bash scripts/test.sh`):
#   rustfmt --check, clippy -D warnings (the lints of Cargo.toml and clippy.toml) and
#   cargo deny (deny.toml; installed if missing), cargo build, the docker fixture image when an engine is there (`cargo xtask
#   fixture-image`), cargo test for the whole workspace, then the Python interop tests
#   (tests/python) against the freshly built hangar-server / hangar-fixture, then the
#   official MCP conformance suite against the fixture directly and through Hangar
#   (scripts/conformance.sh; Node 22 and the suite come from npm), then
#   schemathesis against the REST API's /openapi.json (scripts/fuzz-api.sh).
# Needs a Python with tests/python/requirements.txt installed: $HANGAR_PYTHON, default .venv/bin/python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==== %s ====\n' "$*"; }

PYTHON="${HANGAR_PYTHON:-$PWD/.venv/bin/python}"
BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug"

section "cargo fmt --check; cargo clippy --workspace --all-targets -- -D warnings"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

section "cargo deny check bans licenses sources (deny.toml)"
if ! cargo deny --version >/dev/null 2>&1; then
    echo "installing cargo-deny (once; a few minutes)"
    cargo install --locked cargo-deny@0.20.2 --no-default-features
fi
cargo deny --log-level error check bans licenses sources

section "cargo build --workspace --locked"
cargo build --workspace --locked

section "fixture image: cargo xtask fixture-image (docker tests; skipped without an engine)"
if [[ -n "${DOCKER_HOST:-}" || -S /var/run/docker.sock ]]; then
    if ! cargo xtask fixture-image; then
        echo "warning: no fixture image; the docker tests will be skipped" >&2
        [[ "${HANGAR_REQUIRE_DOCKER:-}" != 1 ]] || exit 1
    fi
else
    echo "no docker engine (DOCKER_HOST unset): the docker tests will be skipped"
fi

section "cargo test --workspace --locked"
cargo test --workspace --locked

section "npm test dependencies: npm ci in tests/npm (conformance suite, Node 22, MCP servers)"
if ! (cd tests/npm && npm ls --depth=0 >/dev/null 2>&1); then
    (cd tests/npm && npm ci --no-audit --no-fund --loglevel=error)
fi
export HANGAR_NPM_BIN="$PWD/tests/npm/node_modules/.bin"

section "pytest tests/python (HANGAR_BIN_DIR=$BIN_DIR)"
if [[ ! -x "$PYTHON" ]]; then
    echo "error: no Python at $PYTHON; run: python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt" >&2
    exit 1
fi
rc=0
HANGAR_BIN_DIR="$BIN_DIR" "$PYTHON" -m pytest tests/python -q || rc=$?
if [[ $rc -eq 5 ]]; then
    echo "error: pytest collected no tests in tests/python" >&2
elif [[ $rc -ne 0 ]]; then
    echo "error: pytest failed (exit $rc)" >&2
fi

section "MCP conformance suite: bash scripts/conformance.sh (fixture directly vs through Hangar)"
conf_rc=0
HANGAR_BIN_DIR="$BIN_DIR" bash scripts/conformance.sh || conf_rc=$?
if [[ $conf_rc -ne 0 ]]; then
    echo "error: a conformance scenario passes directly but not through Hangar (exit $conf_rc)" >&2
    [[ $rc -ne 0 ]] || rc=$conf_rc
fi

section "schemathesis: bash scripts/fuzz-api.sh (REST API against /openapi.json)"
fuzz_rc=0
HANGAR_BIN_DIR="$BIN_DIR" HANGAR_PYTHON="$PYTHON" bash scripts/fuzz-api.sh || fuzz_rc=$?
if [[ $fuzz_rc -ne 0 ]]; then
    echo "error: schemathesis failed (exit $fuzz_rc)" >&2
    [[ $rc -ne 0 ]] || rc=$fuzz_rc
fi
exit "$rc"
