#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs every check:
# formatting, clippy on host and wasm32, native tests, browser tests in
# headless Chromium and Firefox, the release build, and end-to-end tests that
# open the served app in real browsers (calls included, some through coturn;
# axe-core on every screen, and a call made by keyboard alone).
#
# It starts by running the README's run command, the develop command and the
# benchmark's build step as a new user would, before anything else has
# filled the caches, and checks that each serves (or builds) the app.
#
# Usage: scripts/test.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
T0=$(date +%s)
trap 'stop_test_relay; phase_summary; printf "total: %ss\n" $(( $(date +%s) - T0 )) >&2' EXIT

setup() {
	web_tools
	browsers
	turn_server
	redis_server
	pebble_server
	sip_gateway
	axe_core
}

wasm_browser_tests() {
	local browser=$1
	# Per test file; the default 20 s is tight for the data-channel tests
	# (64 MiB through two peer connections) in a debug build on 2 cores.
	export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-90}
	case $browser in
	chrome) wasm_env CHROMEDRIVER="$CHROMEDRIVER_BIN" cargo test --target wasm32-unknown-unknown -p peercall ;;
	firefox) wasm_env GECKODRIVER="$GECKODRIVER_BIN" cargo test --target wasm32-unknown-unknown -p peercall ;;
	esac
}

# The README's run command, as a new user runs it: it must install what it
# needs, build, and serve the app; SIGTERM stops it cleanly.
check_run_command() {
	apt_ensure curl
	local log="$ROOT/target/check-run.log" pid url
	mkdir -p "$ROOT/target"
	setsid ./scripts/run.sh --port 0 >"$log" 2>&1 &
	pid=$!
	url=$(wait_for_line "$log" "$pid" 3600 'peercall is running: open http://[0-9.:]+') || return 1
	url=${url##* }
	serves_app "${url%/}" || { stop_group "$pid"; return 1; }
	stop_group "$pid" || return 1
	wait "$pid" || { log "run.sh exited with $? after SIGTERM; its log: $log"; return 1; }
}

# The develop command: the relay and trunk serve (a debug build, rebuilt on
# save) on free ports; the app through trunk, /healthz through its proxy.
check_dev_command() {
	apt_ensure curl
	local log="$ROOT/target/check-dev.log" pid relay_port dev_port
	relay_port=$(free_port)
	dev_port=$(free_port)
	setsid ./scripts/dev.sh --port "$relay_port" --dev-port "$dev_port" >"$log" 2>&1 &
	pid=$!
	# trunk serves once its first build is done (a debug build: minutes on
	# a fresh machine).
	local i
	for ((i = 0; i < 900; i++)); do
		serves_app "http://127.0.0.1:$dev_port" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || { log "dev.sh exited; its log:"; tail -40 "$log" >&2; return 1; }
		sleep 2
	done
	serves_app "http://127.0.0.1:$dev_port" || { tail -40 "$log" >&2; stop_group "$pid"; return 1; }
	stop_group "$pid"
}

# The benchmark command's build step: the release app, the relay and the
# load generator, built as bench.sh builds them.
check_bench_build() {
	./scripts/bench.sh --build-only || return 1
	[ -f dist/index.html ] && ls dist/*_bg.wasm >/dev/null || { log "bench build left no app in dist/"; return 1; }
	"$ROOT/target/server/peercall-relay" --help >/dev/null || return 1
	"$ROOT/target/server/peercall-bench" --help >/dev/null
}

phase "README run command (scripts/run.sh)" check_run_command
phase "develop command (scripts/dev.sh)" check_dev_command
phase "bench build step (scripts/bench.sh --build-only)" check_bench_build
phase "first-visit bytes within the ceiling (scripts/bench.sh --check-size)" ./scripts/bench.sh --check-size
phase "install tools (skipped when cached)" setup
phase "cargo fmt --check" cargo fmt --all -- --check
phase "clippy (host, all crates)" cargo clippy --workspace --all-targets --quiet -- -D warnings
phase "clippy (wasm32: app, core, protocol)" wasm_cargo clippy --target wasm32-unknown-unknown -p peercall -p peercall-core -p peercall-protocol --all-targets --quiet -- -D warnings
phase "native tests" cargo test --workspace --exclude peercall-e2e
phase "relay for the browser tests" start_test_relay
phase "browser tests: headless Chromium" wasm_browser_tests chrome
phase "browser tests: headless Firefox" wasm_browser_tests firefox
stop_test_relay
# dist/ holds the release build the run command and the bench build made.
phase "end-to-end (served app, real browser)" run_e2e -- --test-threads=1
