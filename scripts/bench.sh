#!/usr/bin/env bash
# The bench command: installs what the benchmarks need (idempotently, like
# scripts/test.sh: browsers, Node and the reference relay's `ws` package,
# twiggy), builds the release app, the relay and the load generator, and runs
# bench/ (peercall-bench), which writes BENCHMARKS.md and bench/results.json.
#
# Usage: scripts/bench.sh [--quick] [--only setup|size|transfer|mesh|large|relay|soak|cluster]...
#        scripts/bench.sh --build-only
#        scripts/bench.sh --check-size
#   --quick       fewer repetitions: a smoke run (minutes), not numbers to publish
#   --build-only  install and build, then stop (the test command checks this)
#   --check-size  build the release app and fail if a first visit downloads
#                 more than the test allows (bench/src/size.rs; the test
#                 command runs this); writes nothing
# A full run takes about 21 minutes on 2 cores.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
T0=$(date +%s)
trap 'phase_summary; printf "total: %ss\n" $(( $(date +%s) - T0 )) >&2' EXIT

TWIGGY_VERSION=0.7.0

# node_relay: Node and the reference relay's dependencies (npm ci from its lock).
node_relay() {
	command -v node >/dev/null && command -v npm >/dev/null || apt_ensure nodejs npm
	local dir="$ROOT/bench/node-relay" want
	want=$(sed -n 's/.*"ws": "\(.*\)".*/\1/p' "$dir/package.json")
	if [ "$(node -p 'require("./bench/node-relay/node_modules/ws/package.json").version' 2>/dev/null)" != "$want" ]; then
		log "installing the reference relay's ws $want (npm ci)"
		timeout 600 npm ci --silent --no-audit --no-fund --prefix "$dir" >&2 || die "npm ci in bench/node-relay failed or timed out"
	fi
}

setup() {
	web_tools
	browsers
	redis_server
	sip_gateway
	node_relay
	TWIGGY_BIN=$(cargo_tool twiggy "$TWIGGY_VERSION" twiggy)
	export TWIGGY_BIN
}

# PEERCALL_WASM_NAMED: cargo's wasm before wasm-bindgen and wasm-opt, which
# still has function names. (twiggy 0.7 cannot read the optimised module:
# it rejects the bulk-memory opcodes and panics on wasm-opt's output.)
build() {
	build_release
	export PEERCALL_WASM_NAMED="$ROOT/target/wasm32-unknown-unknown/release/peercall.wasm"
	PEERCALL_RELAY_BIN=$(build_relay)
	cargo build --quiet --profile server -p peercall-bench
	export PEERCALL_RELAY_BIN PEERCALL_DIST="$ROOT/dist" PEERCALL_REPO="$ROOT"
}

# 10k idle WebSockets need ~10k descriptors in the relay and in the load
# generator: raise the soft limit to the hard one.
raise_fd_limit() {
	local hard
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] && hard=1048576
	ulimit -Sn "$hard" 2>/dev/null || true
	[ "$(ulimit -Sn)" -ge 10500 ] ||
		log "warning: open-file limit $(ulimit -Sn): the 10k idle-connection step will fail (raise the hard limit: ulimit -Hn)"
}

# check_size: the first-visit bytes against the ceiling. Only for the
# size build (std built from source, panics that abort at once: what CI and
# a machine like it make); a build on a prebuilt std (rustup's target) is
# bigger by design and only shown.
check_size() {
	TWIGGY_BIN=$(cargo_tool twiggy "$TWIGGY_VERSION" twiggy)
	export TWIGGY_BIN
	if [ "${WASM_ENV[*]}" = env ]; then
		log "size not checked: this build uses rustup's prebuilt wasm32 std, not the size build the ceiling is for"
		return 0
	fi
	"$ROOT/target/server/peercall-bench" --check-size
}

if [ "${1:-}" = --check-size ]; then
	phase "install tools (skipped when cached)" web_tools
	phase "build (release app, size tool)" build
	phase "first-visit bytes" check_size
	exit 0
fi
phase "install tools (skipped when cached)" setup
phase "build (release app, relay, load generator)" build
if [ "${1:-}" = --build-only ]; then
	log "built: dist/, $PEERCALL_RELAY_BIN, $ROOT/target/server/peercall-bench"
	exit 0
fi
raise_fd_limit
export PEERCALL_BENCH_COMMAND="./scripts/bench.sh${*:+ $*}"
phase "benchmarks" "$ROOT/target/server/peercall-bench" "$@"
