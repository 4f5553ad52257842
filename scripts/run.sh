#!/usr/bin/env bash
# Builds the release app and starts the relay serving it and its WebSocket.
#
# Usage: scripts/run.sh [--port N] [other peercall-relay options]
#   (port also from PEERCALL_PORT; default 8080; see `peercall-relay --help`)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
web_tools
log "building the app (trunk build --release)"
build_release
log "building the relay"
relay=$(build_relay)
exec "$relay" --static-dir "$ROOT/dist" "$@"
