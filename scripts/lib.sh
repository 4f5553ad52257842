# shellcheck shell=bash
# Shared helpers for peercall's scripts: logging, phase timing, and idempotent
# installers for every tool the build and the tests need.
#
# Tools go into a cache outside the checkout, keyed by name and version
# ($PEERCALL_CACHE, default ~/.cache/peercall/tools/NAME-VERSION), so a fresh
# clone on the same machine reuses them and a second run installs nothing.
# Every network step has a timeout: a missing prerequisite is a one-line error,
# never a hang.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PEERCALL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/peercall}"
TOOLS="$CACHE/tools"
mkdir -p "$TOOLS"

# Pinned tool versions. wasm-bindgen comes from Cargo.lock (see wasm_bindgen_version).
TRUNK_VERSION=0.21.14
GECKODRIVER_VERSION=0.37.1
BINARYEN_VERSION=132
AXE_CORE_VERSION=4.14.1

log() { printf '[peercall] %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# --- phases with wall times -------------------------------------------------

PHASES=()
# phase NAME CMD...: runs CMD, prints its wall time, records it for the summary.
phase() {
	local name=$1 start end rc=0
	shift
	printf '\n==> %s\n' "$name" >&2
	start=$(date +%s)
	"$@" || rc=$?
	end=$(date +%s)
	PHASES+=("$(printf '%-40s %5ss%s' "$name" $((end - start)) "$([ $rc -eq 0 ] || echo '  FAILED')")")
	printf '<== %s: %ss\n' "$name" $((end - start)) >&2
	return $rc
}

phase_summary() {
	printf '\nPhase wall times:\n' >&2
	local p
	for p in "${PHASES[@]}"; do printf '  %s\n' "$p" >&2; done
}

# --- Debian packages --------------------------------------------------------

APT_UPDATED=0
# apt_ensure PKG...: installs the Debian packages that are missing.
apt_ensure() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get here: install them with your package manager"
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || die "missing ${missing[*]}: run as root or install them: apt-get install ${missing[*]}"
		sudo="sudo -n"
	fi
	if [ $APT_UPDATED -eq 0 ]; then
		log "apt-get update (package lists)"
		timeout 300 $sudo apt-get update -qq >&2 || die "apt-get update failed or timed out (network to Debian's mirrors?)"
		APT_UPDATED=1
	fi
	log "installing Debian packages: ${missing[*]}"
	# Servers (redis-server, coturn) are started by the tests with their
	# own config, never as services: policy-rc.d's 101 tells the packages'
	# install scripts not to start them.
	local policy=/usr/sbin/policy-rc.d made_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && made_policy=1
	fi
	local ok=0
	DEBIAN_FRONTEND=noninteractive timeout 1800 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || ok=$?
	[ $made_policy -eq 1 ] && $sudo rm -f "$policy"
	[ $ok -eq 0 ] || die "apt-get install ${missing[*]} failed or timed out"
}

# --- cargo-installed tools ---------------------------------------------------

# cargo_tool CRATE VERSION BIN [cargo install args...]: prints the path of BIN,
# installing CRATE@VERSION into the cache first when it is not there.
cargo_tool() {
	local crate=$1 version=$2 bin=$3
	shift 3
	local dir="$TOOLS/$crate-$version"
	if [ ! -x "$dir/bin/$bin" ]; then
		log "installing $crate $version with cargo install (a few minutes, once per machine)"
		local tmp="$dir.tmp.$$"
		rm -rf "$tmp"
		timeout 2400 cargo install --quiet "$crate" --version "$version" --root "$tmp" "$@" >&2 ||
			die "cargo install $crate $version failed or timed out (crates.io reachable?)"
		rm -rf "$dir"
		mv "$tmp" "$dir"
	fi
	printf '%s\n' "$dir/bin/$bin"
}

# The wasm-bindgen version in Cargo.lock: the CLI must match it exactly.
wasm_bindgen_version() {
	awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

# --- the wasm32 toolchain ----------------------------------------------------

WASM_ENV=()
# wasm_setup: makes `wasm_cargo` and `wasm_env` able to build for
# wasm32-unknown-unknown. Uses the ordinary rustup target when the sysroot
# has it; otherwise Debian's rustc-web with the std built from source
# (`rustup target add` cannot download on machines without rustup's host).
wasm_setup() {
	[ ${#WASM_ENV[@]} -gt 0 ] && return 0
	local sysroot
	sysroot=$(rustc --print sysroot)
	if [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown" ]; then
		log "wasm32 std: rustup target in $sysroot"
		WASM_ENV=(env)
		return 0
	fi
	log "wasm32 std: not in $sysroot; using Debian's rustc-web and building std from source"
	apt_ensure rustc-web cargo-web rust-web-src rust-web-clippy lld-19
	[ -d /usr/lib/rustlib/src/rust/library ] || die "rust-web-src did not install the std source"
	WASM_ENV=(env
		"PATH=/usr/bin:$PATH"
		RUSTC=/usr/bin/rustc
		RUSTDOC=/usr/bin/rustdoc
		RUSTC_BOOTSTRAP=1
		CARGO_UNSTABLE_BUILD_STD=std,panic_abort
		CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld)
}

# wasm_env CMD...: runs CMD with the wasm toolchain's environment.
wasm_env() { "${WASM_ENV[@]}" "$@"; }
wasm_cargo() { wasm_env cargo "$@"; }

# --- web build tools ---------------------------------------------------------

# npm_tool PACKAGE VERSION FILE: npm's PACKAGE@VERSION in
# $TOOLS/PACKAGE-VERSION, installed unless FILE (a path inside it) is there.
npm_tool() {
	local dir="$TOOLS/$1-$2"
	[ -e "$dir/$3" ] && return 0
	command -v npm >/dev/null || apt_ensure nodejs npm
	log "installing $1 $2 from npm"
	mkdir -p "$dir"
	timeout 600 npm install --silent --no-audit --no-fund --prefix "$dir" "$1@$2" >&2 ||
		die "npm install $1@$2 failed or timed out"
}

# web_tools: trunk, wasm-bindgen and wasm-opt at their pinned versions, on PATH.
web_tools() {
	local wb trunk_bin wb_bin
	wb=$(wasm_bindgen_version)
	[ -n "$wb" ] || die "no wasm-bindgen in Cargo.lock"
	grep -q "^wasm_bindgen = \"$wb\"" "$ROOT/Trunk.toml" ||
		die "Trunk.toml [tools] wasm_bindgen must be $wb, the version in Cargo.lock"
	grep -q "^wasm_opt = \"version_$BINARYEN_VERSION\"" "$ROOT/Trunk.toml" ||
		die "Trunk.toml [tools] wasm_opt must be version_$BINARYEN_VERSION"

	# wasm-bindgen-cli's own lock names a crate the registry no longer serves,
	# so it is built without --locked.
	wb_bin=$(cargo_tool wasm-bindgen-cli "$wb" wasm-bindgen)
	"$wb_bin" --version | grep -q " $wb\$" || die "$wb_bin is not wasm-bindgen $wb"
	trunk_bin=$(cargo_tool trunk "$TRUNK_VERSION" trunk --locked)

	# Debian's binaryen is too old for what rustc emits; npm's is current.
	local bdir="$TOOLS/binaryen-$BINARYEN_VERSION"
	npm_tool binaryen "$BINARYEN_VERSION" node_modules/.bin/wasm-opt
	"$bdir/node_modules/.bin/wasm-opt" --version | grep -q "version $BINARYEN_VERSION" ||
		die "$bdir has no wasm-opt $BINARYEN_VERSION"

	export PATH="$(dirname "$wb_bin"):$(dirname "$trunk_bin"):$bdir/node_modules/.bin:$PATH"
	wasm_setup
	fetch_crates
}

# fetch_crates: downloads every crate the builds need while the network may
# be used, so the builds that run offline (trunk --offline) find them all:
# the project's (Cargo.lock) and, where std is built from source, std's own
# dependencies (dlmalloc and others, from library/Cargo.lock of
# rust-web-src), which `cargo fetch` in the project does not name. A
# no-op when they are in the cargo cache already.
fetch_crates() {
	[ -n "${CRATES_FETCHED:-}" ] && return 0
	(cd "$ROOT" && timeout 600 cargo fetch --locked --quiet >&2) ||
		die "cargo fetch of the project's crates failed or timed out (crates.io reachable? Cargo.lock current?)"
	if [ "${WASM_ENV[*]}" != env ]; then
		timeout 300 env PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 /usr/bin/cargo fetch --locked --quiet \
			--manifest-path /usr/lib/rustlib/src/rust/library/Cargo.toml >&2 ||
			die "cargo fetch of the wasm32 std's crates (library/Cargo.lock) failed or timed out (crates.io reachable?)"
	fi
	CRATES_FETCHED=1
}

# build_release: the release app into dist/ (trunk, never downloading).
# Where std is built from source (Debian's rustc-web), it is built for size
# and panics abort at once, without formatting a message: 17 KB less wasm
# after gzip (BENCHMARKS.md). Debug builds (tests, trunk serve) keep panic
# messages.
build_release() {
	local size=()
	if [ "${WASM_ENV[*]}" != env ]; then
		size=(CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size
			"RUSTFLAGS=-Zunstable-options -Cpanic=immediate-abort")
	fi
	(cd "$ROOT" && wasm_env "${size[@]}" trunk build --release --offline --dist "$ROOT/dist")
}

# build_relay: the relay binary, optimised for speed; prints its path.
build_relay() {
	(cd "$ROOT" && cargo build --quiet --profile server -p peercall-relay >&2)
	printf '%s\n' "$ROOT/target/server/peercall-relay"
}

# --- browsers ----------------------------------------------------------------

# browsers: headless Chromium + chromedriver and Firefox ESR + geckodriver;
# exports CHROME_BIN, CHROMEDRIVER_BIN, FIREFOX_BIN, GECKODRIVER_BIN.
browsers() {
	apt_ensure chromium chromium-driver firefox-esr
	CHROME_BIN=$(command -v chromium)
	CHROMEDRIVER_BIN=$(command -v chromedriver)
	FIREFOX_BIN=$(command -v firefox-esr)
	GECKODRIVER_BIN=$(cargo_tool geckodriver "$GECKODRIVER_VERSION" geckodriver)
	export CHROME_BIN CHROMEDRIVER_BIN FIREFOX_BIN GECKODRIVER_BIN
	# The test runner wants wasm-bindgen-test-runner from the same CLI build.
	export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
}

# turn_server: coturn (Debian's package) for the TURN tests; exports
# PEERCALL_TURNSERVER_BIN. The tests start their own turnserver on loopback
# with a generated secret (e2e/src/lib.rs, Turn); none runs as a service.
turn_server() {
	apt_ensure coturn
	PEERCALL_TURNSERVER_BIN=$(command -v turnserver || echo /usr/bin/turnserver)
	[ -x "$PEERCALL_TURNSERVER_BIN" ] || die "coturn installed no turnserver binary"
	export PEERCALL_TURNSERVER_BIN
}

# redis_server: Debian's redis-server for the cluster tests; exports
# PEERCALL_REDIS_SERVER_BIN. The tests start their own on a free loopback
# port with a generated config (relay/tests/cluster/, e2e/src/lib.rs); none
# runs as a service.
redis_server() {
	apt_ensure redis-server
	PEERCALL_REDIS_SERVER_BIN=$(command -v redis-server || echo /usr/bin/redis-server)
	[ -x "$PEERCALL_REDIS_SERVER_BIN" ] || die "redis-server installed no redis-server binary"
	export PEERCALL_REDIS_SERVER_BIN
}

# pebble_server: Debian's pebble (a test ACME CA) and openssl for the HTTPS
# test; exports PEERCALL_PEBBLE_BIN. The test (e2e/tests/https.rs) starts
# its own on free loopback ports with a generated config; none runs as a
# service.
pebble_server() {
	apt_ensure pebble openssl curl
	PEERCALL_PEBBLE_BIN=$(command -v pebble || echo /usr/bin/pebble)
	[ -x "$PEERCALL_PEBBLE_BIN" ] || die "pebble installed no pebble binary"
	export PEERCALL_PEBBLE_BIN
}

# sip_gateway: Debian's janus (its SIP plugin is the gateway) and baresip
# (the far phone) for the phone-call test; exports PEERCALL_JANUS_BIN,
# PEERCALL_JANUS_LIB and PEERCALL_BARESIP_BIN. The test (e2e/tests/phone.rs)
# starts its own Janus and baresip on free loopback ports with generated
# configs; neither runs as a service.
sip_gateway() {
	apt_ensure janus baresip-core
	PEERCALL_JANUS_BIN=$(command -v janus || echo /usr/bin/janus)
	[ -x "$PEERCALL_JANUS_BIN" ] || die "the janus package installed no janus binary"
	PEERCALL_JANUS_LIB=$(dirname "$(dpkg -L janus | grep -m1 '/janus/plugins/libjanus_sip.so$')")
	PEERCALL_JANUS_LIB=${PEERCALL_JANUS_LIB%/plugins}
	[ -f "$PEERCALL_JANUS_LIB/plugins/libjanus_sip.so" ] || die "janus has no SIP plugin under $PEERCALL_JANUS_LIB"
	PEERCALL_BARESIP_BIN=$(command -v baresip || echo /usr/bin/baresip)
	[ -x "$PEERCALL_BARESIP_BIN" ] || die "baresip-core installed no baresip binary"
	export PEERCALL_JANUS_BIN PEERCALL_JANUS_LIB PEERCALL_BARESIP_BIN
}

# axe_core: axe-core (the accessibility engine most audits use) from npm at
# its pinned version, for the accessibility test (e2e/tests/a11y.rs);
# exports PEERCALL_AXE_JS, the path of axe.min.js the test injects.
axe_core() {
	local js="$TOOLS/axe-core-$AXE_CORE_VERSION/node_modules/axe-core/axe.min.js"
	npm_tool axe-core "$AXE_CORE_VERSION" node_modules/axe-core/axe.min.js
	grep -q "axe v$AXE_CORE_VERSION" "$js" || die "$js is not axe-core $AXE_CORE_VERSION"
	PEERCALL_AXE_JS=$js
	export PEERCALL_AXE_JS
}

# run_e2e [cargo test args...]: the end-to-end tests against the release
# build in dist/ and the relay binary, one browser test at a time.
run_e2e() {
	local relay
	relay=$(build_relay)
	PEERCALL_RELAY_BIN="$relay" PEERCALL_DIST="$ROOT/dist" cargo test -p peercall-e2e "$@"
}

# start_test_relay: runs the relay binary on a free loopback port in the
# background for the browser tests, exports PEERCALL_TEST_RELAY (its ws://
# URL) and TEST_RELAY_PID; stop_test_relay ends it. Its log goes to
# target/test-relay.log.
start_test_relay() {
	local relay log="$ROOT/target/test-relay.log" url="" i
	relay=$(build_relay)
	"$relay" --port 0 >"$log" 2>&1 &
	TEST_RELAY_PID=$!
	for i in $(seq 1 100); do
		url=$(sed -n 's/^signaling WebSocket: \(ws:[^ ]*\).*/\1/p' "$log")
		[ -n "$url" ] && break
		kill -0 "$TEST_RELAY_PID" 2>/dev/null || die "the test relay exited: $(cat "$log")"
		sleep 0.1
	done
	[ -n "$url" ] || die "the test relay did not start within 10 s: $(cat "$log")"
	export PEERCALL_TEST_RELAY=$url TEST_RELAY_PID
	log "test relay at $url (log: $log)"
}

# --- the README's commands, checked --------------------------------------

# serves_app BASE: BASE/ is the app's index.html, the wasm it names is
# served as a wasm module, and BASE/healthz (or $2/healthz) says ok.
serves_app() {
	local base=$1 health=${2:-$1} index wasm magic
	index=$(curl -fsS --max-time 20 "$base/") || { log "no index.html at $base/"; return 1; }
	wasm=$(printf '%s' "$index" | grep -o '[^"'"'"' ]*_bg\.wasm' | head -1)
	[ -n "$wasm" ] || { log "$base/ names no wasm"; return 1; }
	local tmp
	tmp=$(mktemp)
	curl -fsS --max-time 60 -o "$tmp" "$base/${wasm#/}" || { rm -f "$tmp"; log "cannot fetch $base/${wasm#/}"; return 1; }
	magic=$(head -c 4 "$tmp" | od -An -tx1 | tr -d ' \n')
	rm -f "$tmp"
	[ "$magic" = 0061736d ] || { log "$base/${wasm#/} is not a wasm module"; return 1; }
	curl -fsS --max-time 10 "$health/healthz" | grep -q '"status":"ok"' ||
		{ log "$health/healthz does not say ok"; return 1; }
	log "serves the app: $base/ (index, ${wasm#/}), $health/healthz"
}

# wait_for_line LOG PID SECONDS REGEX: waits until LOG has a line matching
# REGEX (printed), while PID lives.
wait_for_line() {
	local log=$1 pid=$2 secs=$3 re=$4 i line
	for ((i = 0; i < secs * 2; i++)); do
		line=$(grep -m1 -oE "$re" "$log" 2>/dev/null || true)
		[ -n "$line" ] && { printf '%s\n' "$line"; return 0; }
		kill -0 "$pid" 2>/dev/null || { log "exited before printing /$re/; its log:"; tail -40 "$log" >&2; return 1; }
		sleep 0.5
	done
	log "no /$re/ within $secs s; its log:"
	tail -40 "$log" >&2
	return 1
}

# stop_group PID: SIGTERM to the process group PID leads (setsid), then
# waits up to 20 s; fails if anything of it is left.
stop_group() {
	local pid=$1 i
	kill -TERM -- "-$pid" 2>/dev/null || true
	for ((i = 0; i < 40; i++)); do
		kill -0 -- "-$pid" 2>/dev/null || return 0
		sleep 0.5
	done
	log "process group $pid still running 20 s after SIGTERM; killing it"
	kill -KILL -- "-$pid" 2>/dev/null || true
	return 1
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop_test_relay() {
	[ -n "${TEST_RELAY_PID:-}" ] && kill "$TEST_RELAY_PID" 2>/dev/null
	TEST_RELAY_PID=
	return 0
}
