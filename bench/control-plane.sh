#!/usr/bin/env bash
# Control-plane scale: N simulated sidecars against mesh-control serving a
# generated mesh of 1000 services x 2 endpoints, 1000 VirtualServices and
# 1000 DestinationRules from a config directory.
#
# Prints one table: time until every sidecar has its full config (CDS, LDS,
# EDS, RDS received and ACKed), push latency of one VirtualService change
# (the file rewritten -> the new RDS ACKed by each sidecar), mesh-control's
# CPU seconds per phase and peak RSS, and the machine. The load generator is
# mesh-control/examples/xds_load.rs; it runs on the same machine and its CPU
# time is printed too.
#
# Knobs (environment): CLIENTS (2000), CONNECT_TIMEOUT (120 s),
# CHANGE_TIMEOUT (30 s), MAX_RSS_MIB (8192: past this mesh-control RSS the
# run stops, to spare a shared machine), KEEP=1 keeps the temp dir with config and logs,
# NO_BUILD=1 uses the release binaries already built.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIENTS=${CLIENTS:-2000}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-120}
CHANGE_TIMEOUT=${CHANGE_TIMEOUT:-30}
MAX_RSS_MIB=${MAX_RSS_MIB:-8192}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'control-plane: %s\n' "$*" >&2; exit 1; }

# One connection per sidecar on each side, plus the config files.
want_fds=$((CLIENTS + 1024))
if (($(ulimit -n) < want_fds)); then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    (($(ulimit -n) >= want_fds)) || die "need $want_fds file descriptors, the hard limit is $(ulimit -Hn)"
fi

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    log "building mesh-control and the load generator (release)"
    (cd "$ROOT" && cargo build --release -p mesh-control --bin mesh-control --example xds_load)
fi
CONTROL="$ROOT/target/release/mesh-control"
LOAD="$ROOT/target/release/examples/xds_load"
[[ -x "$CONTROL" && -x "$LOAD" ]] || die "release binaries not found under $ROOT/target/release"

T=$(mktemp -d -t control-plane.XXXXXX)
CONTROL_PID=

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    if [[ -n "$CONTROL_PID" ]]; then
        kill -TERM "$CONTROL_PID" 2>/dev/null || true
        for i in $(seq 50); do
            kill -0 "$CONTROL_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$CONTROL_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [[ "${KEEP:-0}" == 1 || $rc -ne 0 ]]; then
        printf 'control-plane: config and logs kept in %s\n' "$T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

log "generating the mesh in $T/config"
"$LOAD" generate "$T/config"

log "starting mesh-control"
"$CONTROL" --config-dir "$T/config" --xds-port 0 --monitoring-port 0 \
    --address-file "$T/addresses.json" --log warn 2>"$T/mesh-control.log" &
CONTROL_PID=$!
for _ in $(seq 300); do
    [[ -s "$T/addresses.json" ]] && break
    kill -0 "$CONTROL_PID" 2>/dev/null || die "mesh-control exited: $(tail -5 "$T/mesh-control.log")"
    sleep 0.1
done
[[ -s "$T/addresses.json" ]] || die "mesh-control did not start within 30 s"
XDS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["xds"])' "$T/addresses.json")
MONITORING=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["monitoring"])' "$T/addresses.json")
for _ in $(seq 300); do
    curl -fsS "http://$MONITORING/ready" >/dev/null 2>&1 && break
    sleep 0.1
done

log "connecting $CLIENTS sidecars to $XDS"
CLK_TCK=$(getconf CLK_TCK) timeout $((CONNECT_TIMEOUT + CHANGE_TIMEOUT + 60)) \
    "$LOAD" run --xds "$XDS" --config-dir "$T/config" --pid "$CONTROL_PID" \
    --clients "$CLIENTS" --connect-timeout "$CONNECT_TIMEOUT" --change-timeout "$CHANGE_TIMEOUT" \
    --max-rss-mib "$MAX_RSS_MIB"
