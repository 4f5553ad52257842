#!/usr/bin/env bash
# Development: the relay on 8080 (WebSocket only) and `trunk serve` on 8081,
# which rebuilds the app on save and proxies /ws to the relay.
#
# Usage: scripts/dev.sh   (then open http://127.0.0.1:8081/; Ctrl-C stops both)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
web_tools
cargo build --quiet -p peercall-relay
"$ROOT/target/debug/peercall-relay" --port 8080 &
relay=$!
trap 'kill $relay 2>/dev/null' EXIT
wasm_env trunk serve --offline
