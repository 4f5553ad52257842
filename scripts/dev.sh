#!/usr/bin/env bash
# Development: the relay (WebSocket, /healthz, /ice-servers) on 8080 and
# `trunk serve` on 8081, which rebuilds the app on save and proxies the
# relay's paths, so the app talks to its relay at its own origin as it does
# when the relay serves it.
#
# Usage: scripts/dev.sh [--port N] [--dev-port M] [other peercall-relay options]
#   --port      the relay's port (also PEERCALL_PORT; default 8080)
#   --dev-port  trunk's port (also PEERCALL_DEV_PORT; default 8081)
# Then open http://127.0.0.1:8081/; Ctrl-C stops both. The debug build goes
# to target/dev/dist, so dist/ keeps the release build.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
relay_port=${PEERCALL_PORT:-8080}
dev_port=${PEERCALL_DEV_PORT:-8081}
relay_args=()
while [ $# -gt 0 ]; do
	case $1 in
	--port) relay_port=${2:?--port needs a number}; shift 2 ;;
	--dev-port) dev_port=${2:?--dev-port needs a number}; shift 2 ;;
	*) relay_args+=("$1"); shift ;;
	esac
done
web_tools
cargo build --quiet -p peercall-relay
"$ROOT/target/debug/peercall-relay" --port "$relay_port" ${relay_args[@]+"${relay_args[@]}"} &
relay=$!
trap 'kill $relay 2>/dev/null' EXIT

# Trunk.toml with the ports and absolute paths, for `trunk --config`.
mkdir -p "$ROOT/target/dev"
config="$ROOT/target/dev/Trunk.toml"
sed -e "s|127\.0\.0\.1:8080|127.0.0.1:$relay_port|g" \
	-e "s|^port = 8081|port = $dev_port|" \
	-e "s|^target = \"index.html\"|target = \"$ROOT/index.html\"|" \
	-e "s|^dist = \"dist\"|dist = \"$ROOT/target/dev/dist\"|" \
	"$ROOT/Trunk.toml" >"$config"
grep -q "port = $dev_port" "$config" && grep -q "$ROOT/index.html" "$config" ||
	die "could not adapt Trunk.toml for the ports (its [serve] port or [build] target changed?)"
log "relay on 127.0.0.1:$relay_port; the app (trunk serve) on http://127.0.0.1:$dev_port/"
wasm_env trunk serve --offline --config "$config" --watch "$ROOT/src" --watch "$ROOT/index.html" \
	--watch "$ROOT/styles" --watch "$ROOT/config.json" --watch "$ROOT/Cargo.toml" --watch "$ROOT/protocol/src"
