#!/usr/bin/env bash
# Smoke test with a third-party client: the MCP Inspector CLI against `python -m server` over stdio.
# Usage: .ci/inspector-smoke.sh PYTHON   (PYTHON: the interpreter of the venv where the server is installed)
# The Inspector CLI exits 0 when all is well, 5 on a tool error, 1 on a protocol error.
set -euo pipefail
PY=${1:?usage: inspector-smoke.sh PYTHON}
HERE=$(cd "$(dirname "$0")" && pwd)
NODE_DIR=${INSPECTOR_DIR:-$HOME/.cache/conv-mcp-inspector}
if [ ! -x "$NODE_DIR/node_modules/.bin/mcp-inspector" ]; then
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --silent --no-audit --no-fund @modelcontextprotocol/inspector@2.12.0 >&2
fi
INSPECTOR="$NODE_DIR/node_modules/.bin/mcp-inspector"
WORK=$(mktemp -d)   # run from an empty directory: the server must come from the installed package
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

run() {  # run EXPECTED_EXIT DESCRIPTION ARGS...
  local expected=$1 what=$2; shift 2
  local out rc=0
  out=$(timeout 120 "$INSPECTOR" --cli "$PY" -m server "$@" 2>&1) || rc=$?
  if [ "$rc" -ne "$expected" ]; then
    echo "inspector smoke FAILED: $what: exit $rc, expected $expected" >&2
    echo "$out" | tail -20 >&2
    exit 1
  fi
  printf '%s' "$out"
}

out=$(run 0 "tools/list" --method tools/list --strict)
grep -q '"conv_output_size"' <<<"$out" || { echo "tools/list lacks conv_output_size" >&2; exit 1; }
out=$(run 0 "tools/call conv_output_size" --method tools/call --tool-name conv_output_size \
  --tool-arg 'input_size=[224,224]' kernel_size=7 stride=2 padding=3)
grep -q '"output_size"' <<<"$out" && grep -q '112' <<<"$out" || { echo "conv_output_size gave no [112, 112]" >&2; exit 1; }
out=$(run 5 "tools/call with a kernel larger than the input (a tool error)" --method tools/call \
  --tool-name conv_output_size --tool-arg input_size=5 kernel_size=7)
grep -q 'kernel spans 7 px' <<<"$out" || { echo "tool error text lacks the rule and numbers" >&2; exit 1; }
out=$(run 0 "prompts/list" --method prompts/list)
grep -q '"cnn-architect"' <<<"$out" && grep -q '"conv-shape-calculator"' <<<"$out" || { echo "prompts missing" >&2; exit 1; }
for uri in conv://prompts/cnn-architect conv://skills/conv-shape-calculator; do
  out=$(run 0 "resources/read $uri" --method resources/read --uri "$uri")
  grep -q '"text/markdown"' <<<"$out" || { echo "$uri is not text/markdown" >&2; exit 1; }
done
echo "inspector smoke (stdio): ok"
