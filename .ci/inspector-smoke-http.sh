#!/usr/bin/env bash
# Smoke test with a third-party client over Streamable HTTP: the MCP Inspector CLI against
# `python -m server --transport http` on a free loopback port, once with a bearer token (stateful, SSE) and once
# stateless with JSON responses. The servers are stopped at the end, whatever happens.
# Usage: .ci/inspector-smoke-http.sh PYTHON   (PYTHON: the interpreter of the venv where the server is installed)
# The Inspector CLI exits 0 when all is well, 5 on a tool error, 1 on a protocol error.
set -euo pipefail
PY=${1:?usage: inspector-smoke-http.sh PYTHON}
NODE_DIR=${INSPECTOR_DIR:-$HOME/.cache/conv-mcp-inspector}
if [ ! -x "$NODE_DIR/node_modules/.bin/mcp-inspector" ]; then
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --silent --no-audit --no-fund @modelcontextprotocol/inspector@2.12.0 >&2
fi
INSPECTOR="$NODE_DIR/node_modules/.bin/mcp-inspector"
WORK=$(mktemp -d)   # run from an empty directory: the server must come from the installed package
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
TOKEN="smoke-$RANDOM-$RANDOM"

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_server() {  # start_server LOGNAME ARGS... ; sets URL
  local name=$1; shift
  local port; port=$(free_port)
  "$PY" -m server --transport http --host 127.0.0.1 --port "$port" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  local pid=$!
  for _ in $(seq 1 300); do
    if "$PY" -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; then
      URL="http://127.0.0.1:$port/mcp"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "inspector smoke (http) FAILED: server $name exited:" >&2; tail -20 "$WORK/$name.log" >&2; exit 1
    fi
    sleep 0.2
  done
  echo "inspector smoke (http) FAILED: server $name did not answer /health in 60 s" >&2; tail -20 "$WORK/$name.log" >&2; exit 1
}

run() {  # run EXPECTED_EXIT DESCRIPTION ARGS...
  local expected=$1 what=$2; shift 2
  local out rc=0
  out=$(timeout 120 "$INSPECTOR" --cli "$@" 2>&1) || rc=$?
  if [ "$rc" -ne "$expected" ]; then
    echo "inspector smoke (http) FAILED: $what: exit $rc, expected $expected" >&2
    echo "$out" | tail -20 >&2
    exit 1
  fi
  printf '%s' "$out"
}

smoke() {  # smoke LABEL HEADER_ARGS... : the calls every HTTP deployment must answer
  local label=$1; shift
  local out
  out=$(run 0 "$label tools/list" "$URL" --transport http "$@" --method tools/list)
  grep -q '"conv_output_size"' <<<"$out" || { echo "$label: tools/list lacks conv_output_size" >&2; exit 1; }
  out=$(run 0 "$label tools/call conv_output_size" "$URL" --transport http "$@" --method tools/call \
    --tool-name conv_output_size --tool-arg 'input_size=[224,224]' kernel_size=7 stride=2 padding=3)
  grep -q '"output_size"' <<<"$out" && grep -q '112' <<<"$out" || { echo "$label: no [112, 112]" >&2; exit 1; }
  out=$(run 5 "$label tools/call with a kernel larger than the input (a tool error)" "$URL" --transport http "$@" \
    --method tools/call --tool-name conv_output_size --tool-arg input_size=5 kernel_size=7)
  grep -q 'kernel spans 7 px' <<<"$out" || { echo "$label: tool error text lacks the rule and numbers" >&2; exit 1; }
  out=$(run 0 "$label prompts/list" "$URL" --transport http "$@" --method prompts/list)
  grep -q '"cnn-architect"' <<<"$out" || { echo "$label: prompts missing" >&2; exit 1; }
  out=$(run 0 "$label resources/read" "$URL" --transport http "$@" --method resources/read \
    --uri conv://skills/conv-shape-calculator)
  grep -q '"text/markdown"' <<<"$out" || { echo "$label: resource is not text/markdown" >&2; exit 1; }
}

# 1. The default deployment with a bearer token: stateful sessions, SSE responses.
CONV_MCP_TOKEN="$TOKEN" start_server token
smoke "token" --header "Authorization: Bearer $TOKEN"
rc=0
timeout 120 "$INSPECTOR" --cli "$URL" --transport http --method tools/list >"$WORK/notoken.out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] || ! grep -qi 'auth' "$WORK/notoken.out"; then  # 401 + WWW-Authenticate: the CLI asks for auth
  echo "inspector smoke (http) FAILED: tools/list without the token: exit $rc, not refused for auth" >&2
  tail -5 "$WORK/notoken.out" >&2; exit 1
fi

# 2. The scale-out deployment: stateless, one JSON body per request.
start_server stateless --stateless --json-response
smoke "stateless"

echo "inspector smoke (http): ok"
