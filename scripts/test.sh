#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs every check:
# formatting, clippy on host and wasm32, native tests, browser tests in
# headless Chromium and Firefox, the release build, and end-to-end tests that
# open the served app in real browsers (calls included, some through coturn).
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

phase "install tools (skipped when cached)" setup
phase "cargo fmt --check" cargo fmt --all -- --check
phase "clippy (host, all crates)" cargo clippy --workspace --all-targets --quiet -- -D warnings
phase "clippy (wasm32: app, protocol)" wasm_cargo clippy --target wasm32-unknown-unknown -p peercall -p peercall-protocol --all-targets --quiet -- -D warnings
phase "native tests" cargo test --workspace --exclude peercall-e2e
phase "relay for the browser tests" start_test_relay
phase "browser tests: headless Chromium" wasm_browser_tests chrome
phase "browser tests: headless Firefox" wasm_browser_tests firefox
stop_test_relay
phase "release build (trunk)" build_release
phase "end-to-end (served app, real browser)" run_e2e -- --test-threads=1
