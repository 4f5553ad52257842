#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) under libFuzzer for a set
# time each, starting from the kept inputs (fuzz/seeds/, fuzz/regressions/)
# and the corpus grown by earlier runs (target/fuzz-corpus/, not kept).
#
# An input that makes a target fail is copied to fuzz/regressions/TARGET/:
# fix the bug, keep the input (commit it), and scripts/test.sh replays it
# from then on (fuzzing/tests/replay.rs).
#
# Usage: scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
#
# Built with stable Rust and --sanitizer none: the code fuzzed is safe Rust
# (the relay forbids unsafe), so what libFuzzer finds is a panic, an
# overflow in a debug assertion, a hang or unbounded memory, not memory
# corruption that a sanitizer would have to catch.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(protocol channel stats config relay)

apt_ensure g++ # libFuzzer itself is C++, built by libfuzzer-sys
CARGO_FUZZ=$(cargo_tool cargo-fuzz 0.13.2 cargo-fuzz --locked)
export CARGO_TARGET_DIR="$ROOT/target/fuzz"
(cd fuzz && "$CARGO_FUZZ" fuzz build --sanitizer none) || die "building the fuzz targets failed"

failed=()
for t in "${TARGETS[@]}"; do
	corpus="$ROOT/target/fuzz-corpus/$t"
	artifacts="$ROOT/target/fuzz-artifacts/$t"
	mkdir -p "$corpus" "$artifacts" "fuzz/regressions/$t"
	log "fuzzing $t for ${SECONDS_EACH}s"
	if (cd fuzz && "$CARGO_FUZZ" fuzz run --sanitizer none "$t" "$corpus" "seeds/$t" "regressions/$t" -- \
		-max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$artifacts/" -print_final_stats=1) >"$ROOT/target/fuzz-$t.log" 2>&1; then
		grep -E '^Done [0-9]+ runs' "$ROOT/target/fuzz-$t.log" | sed "s/^/[peercall] $t: /" >&2
	else
		failed+=("$t")
		for a in "$artifacts"/*; do
			[ -f "$a" ] || continue
			cp "$a" "fuzz/regressions/$t/"
			log "$t failed on $(basename "$a"): kept as fuzz/regressions/$t/$(basename "$a")"
		done
		tail -30 "$ROOT/target/fuzz-$t.log" >&2
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	die "fuzzing found failures in: ${failed[*]} (logs: target/fuzz-*.log); fix them and commit the kept inputs"
fi
log "no failures in ${TARGETS[*]} (${SECONDS_EACH}s each)"
