#!/usr/bin/env bash
# Makes the screenshots in docs/screenshots/ from the real app: builds the
# release app, serves it with the relay, opens it in headless Chromium and
# Firefox with fake cameras, and saves what they show: the local preview in
# each, a Chromium-Firefox call from both sides, and a four-person call.
#
# Usage: scripts/screenshots.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
web_tools
browsers
build_release
PEERCALL_SCREENSHOT_DIR="$ROOT/docs/screenshots" run_e2e -q --test served_app -- --test-threads=1 local_preview phone
PEERCALL_SCREENSHOT_DIR="$ROOT/docs/screenshots" run_e2e -q --test call -- --test-threads=1 chromium_and_firefox
PEERCALL_SCREENSHOT_DIR="$ROOT/docs/screenshots" run_e2e -q --test mesh -- --test-threads=1 four_people
ls -l "$ROOT"/docs/screenshots/*.png >&2
