#!/usr/bin/env bash
# The cost of one workload certificate rotation, under a steady load.
#
#   oha -> client mesh-proxy -mTLS-> server mesh-proxy -> app (a third
#          mesh-proxy answering 200 itself)
#
# mesh-control runs as the mesh's CA (--ca-dir, --secure-port); both
# sidecars get their certificates from it with bootstrap tokens, as in the
# local mesh, and present them to each other (SDS names `default` and
# `ROOTCA` in a static bootstrap; no xDS). Three phases of the same length
# and the same load (oha at a fixed rate over keep-alive connections), each
# with a fresh pair of sidecars:
#   long    certificates for LONG_TTL (24h): no rotation in the windows
#   short   certificates for SHORT_TTL (10s): renewed every 3-4 s by each
#           proxy (at half the lifetime, which the CA backdates a little)
#   long    again, so that the difference between the two long runs shows
#           how much the CPU figures move without any rotation (the noise)
# Each phase has an idle window (no load, IDLE_SECS), then the load window
# (WINDOW_SECS at RATE). Per rotation, in each window: CPU milliseconds of
# each mesh-proxy and of mesh-control (the time its threads spent on a CPU,
# from /proc/<pid>/task/*/schedstat: /proc/<pid>/stat's 10 ms ticks are
# coarser than a rotation; short minus the mean of the long runs, divided
# by the rotations in the window; mesh-control's by the certificates it
# signed), and the wall time
# of a rotation, from its first attempt to the new certificate in use (the
# proxies' mesh_proxy_workload_cert_rotation_seconds and their took_ms log
# lines). Per phase: the load's p50/p99 and failed requests.
#
# Knobs (environment): RATE (200 rps), CONNS (8), WINDOW_SECS (60),
# IDLE_SECS (30), WARMUP_SECS (5), SHORT_TTL (10s), LONG_TTL (24h),
# TIME_LIMIT (900 s for everything after the build), KEEP=1 keeps the temp
# dir with configs and logs, NO_BUILD=1 uses the release binaries already
# built.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=${RATE:-200}
CONNS=${CONNS:-8}
WINDOW_SECS=${WINDOW_SECS:-60}
IDLE_SECS=${IDLE_SECS:-30}
WARMUP_SECS=${WARMUP_SECS:-5}
SHORT_TTL=${SHORT_TTL:-10s}
LONG_TTL=${LONG_TTL:-24h}
TIME_LIMIT=${TIME_LIMIT:-900}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'rotation-cost: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
export PATH="$PATH:$HOME/.cargo/bin"
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"
if ! command -v oha >/dev/null; then
    log "installing oha"
    cargo install --locked oha
fi

# --- processes, cleanup ------------------------------------------------------
T=$(mktemp -d -t rotation-cost.XXXXXX)
R="$T/results"
mkdir -p "$R"
# shellcheck source=bench/processes.sh
source "$ROOT/bench/processes.sh"
processes_cleanup_on_exit rotation-cost

# --- build -------------------------------------------------------------------
if [[ "${NO_BUILD:-0}" != 1 ]]; then
    log "building mesh-control and mesh-proxy (release)"
    in_own_group bash -c "cd '$ROOT' && exec cargo build --release -p mesh-control -p mesh-proxy"
fi
TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
CONTROL="$TARGET_DIR/release/mesh-control"
MESH_PROXY="$TARGET_DIR/release/mesh-proxy"
[[ -x "$CONTROL" && -x "$MESH_PROXY" ]] || die "release binaries not found under $TARGET_DIR/release"

# Whatever happens, everything stops TIME_LIMIT seconds from now.
watchdog "$TIME_LIMIT"

# --- mesh-control, the CA ----------------------------------------------------
CA_DIR="$T/ca"
mkdir -p "$T/tokens"
for account in client server; do
    "$CONTROL" token --namespace default --service-account "$account" --ca-dir "$CA_DIR" \
        >"$T/tokens/$account" 2>>"$T/token.log" || die "mesh-control token failed (see $T/token.log)"
done
log "starting mesh-control with its CA"
"$CONTROL" --xds-port 0 --monitoring-port 0 --secure-port 0 --ca-dir "$CA_DIR" \
    --address-file "$T/control.json" --log warn >"$T/control.log" 2>&1 &
CONTROL_PID=$!
PIDS+=("$CONTROL_PID")
wait_for_file "$T/control.json" "$CONTROL_PID"
CA_ADDRESS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secure"])' "$T/control.json")

# --- bootstraps ----------------------------------------------------------------
# bootstrap FILE ROLE [NEXT_HOP]: the app answers 200 itself; the server
# terminates mTLS (client certificate required, presenting `default`,
# trusting `ROOTCA`) in front of NEXT_HOP; the client speaks mTLS to
# NEXT_HOP and checks the server's SPIFFE id.
bootstrap() {
    python3 - "$@" <<'EOF'
import json, sys
out, role, hop = sys.argv[1], sys.argv[2], (sys.argv[3:] or [""])[0]
sds = lambda name: {"name": name, "sds_config": {"ads": {}}}
def manager(route):
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": role,
        "route_config": {"name": role, "virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, **route}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}
chain, clusters = {}, []
if role == "app":
    chain["filters"] = [manager({"direct_response": {"status": 200, "body": {"inline_string": "ok"}}})]
else:
    host, port = hop.rsplit(":", 1)
    cluster = {"name": "next", "connect_timeout": "1s", "load_assignment": {"cluster_name": "next",
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address":
            {"address": host, "port_value": int(port)}}}}]}]}}
    chain["filters"] = [manager({"route": {"cluster": "next"}})]
    if role == "server":
        chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": True, "common_tls_context": {
                "tls_certificate_sds_secret_configs": [sds("default")],
                "validation_context_sds_secret_config": sds("ROOTCA")}}}
    else:
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [sds("default")],
                "combined_validation_context": {
                    "default_validation_context": {"match_typed_subject_alt_names": [{"san_type": "URI",
                        "matcher": {"exact": "spiffe://cluster.local/ns/default/sa/server"}}]},
                    "validation_context_sds_secret_config": sds("ROOTCA")}}}}
    clusters.append(cluster)
json.dump({
    "node": {"id": f"sidecar~127.0.0.1~{role}.default~default.svc.cluster.local",
             "metadata": {"NAMESPACE": "default", "SERVICE_ACCOUNT": role}},
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    "static_resources": {"listeners": [{"name": role,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [chain]}], "clusters": clusters},
}, open(out, "w"), indent=2)
EOF
}

# start_proxy DIR ROLE [TTL]: sets PROXY_PID and LISTENER (its address);
# with TTL, the certificate comes from mesh-control's CA for that long.
start_proxy() {
    local dir=$1 role=$2 ttl=${3:-} i
    local args=(--bootstrap "$dir/$role.json" --admin-address-path "$dir/$role.admin"
        --concurrency 1 --drain-timeout 1s)
    if [[ -n "$ttl" ]]; then
        # The rotation log lines (with took_ms), nothing else.
        args+=(--ca-address "https://$CA_ADDRESS" --ca-root-cert "$CA_DIR/root-cert.pem"
            --ca-token-file "$T/tokens/$role" --cert-ttl "$ttl" --log "warn,mesh_proxy::identity=info")
    else
        args+=(--log warn)
    fi
    "$MESH_PROXY" "${args[@]}" >"$dir/$role.stdout" 2>"$dir/$role.log" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_for_file "$dir/$role.admin" "$PROXY_PID"
    local admin
    admin=$(<"$dir/$role.admin")
    for i in $(seq 300); do
        curl -s -o /dev/null --fail --max-time 1 "http://$admin/ready" && break
        kill -0 "$PROXY_PID" 2>/dev/null || die "$role exited (see $dir/$role.log)"
        ((i < 300)) || die "$role not ready within 30 s (see $dir/$role.log)"
        sleep 0.1
    done
    LISTENER=$(curl -sS --fail --max-time 5 "http://$admin/listeners" | sed -n "s/^$role:://p")
    [[ -n "$LISTENER" ]] || die "no $role listener"
}

# stop PID: TERM, then KILL if it has not exited within 5 s.
stop() {
    local i
    kill -TERM "$1" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# rotations DIR ROLE: "count sum" of the proxy's rotation summary.
rotations() {
    curl -sS --fail --max-time 5 "http://$(<"$1/$2.admin")/stats/prometheus" | awk '
        $1 == "mesh_proxy_workload_cert_rotation_seconds_count" {count = $2}
        $1 == "mesh_proxy_workload_cert_rotation_seconds_sum" {sum = $2}
        END {printf "%d %s\n", count, (sum == "" ? 0 : sum)}'
}

log "starting the app"
mkdir -p "$T/app"
bootstrap "$T/app/app.json" app
start_proxy "$T/app" app
APP=$LISTENER

OHA=(oha --no-tui -t 5s -c "$CONNS")

# thread_cpu NAME PID: a "NAME TID NANOSECONDS" line per thread of the
# process, its time on a CPU (/proc/<pid>/task/<tid>/schedstat).
# /proc/<pid>/stat counts whole processes in 10 ms ticks, coarser than one
# rotation; per thread, a thread that exits between two marks loses only
# its own time in between.
thread_cpu() {
    local file tid run
    for file in /proc/"$2"/task/*/schedstat; do
        tid=${file#/proc/"$2"/task/}
        read -r run _ <"$file" 2>/dev/null || continue
        printf '%s %s %s\n' "$1" "${tid%/schedstat}" "$run"
    done
}

# mark PREFIX before|after: the CPU time of the client proxy, the server
# proxy and mesh-control by thread, and each proxy's rotation count and sum
# (and, before, its log's length) into $R/PREFIX.*; after, also the
# rotation log lines written since before.
mark() {
    local prefix=$1 when=$2 role lines=""
    {
        thread_cpu client "$CLIENT_PID"
        thread_cpu server "$SERVER_PID"
        thread_cpu control "$CONTROL_PID"
    } >"$R/$prefix.cpu.$when"
    for role in client server; do
        [[ $when == before ]] && lines=$(wc -l <"$PHASE_DIR/$role.log")
        printf '%s %s\n' "$(rotations "$PHASE_DIR" "$role")" "$lines" >"$R/$prefix.$role.$when"
        if [[ $when == after ]]; then
            tail -n "+$(($(cut -d' ' -f3 "$R/$prefix.$role.before") + 1))" "$PHASE_DIR/$role.log" |
                grep 'workload certificate rotated' >"$R/$prefix.$role.rotations" || true
        fi
    done
}

# phase NAME TTL: a fresh sidecar pair with certificates for TTL; an idle
# window (no load: what rotations cost stands out), a warm-up, then the
# load window, each with marks around it.
phase() {
    local name=$1 ttl=$2
    PHASE_DIR="$T/$1"
    mkdir -p "$PHASE_DIR"
    bootstrap "$PHASE_DIR/server.json" server "$APP"
    start_proxy "$PHASE_DIR" server "$ttl"
    SERVER_PID=$PROXY_PID
    bootstrap "$PHASE_DIR/client.json" client "$LISTENER"
    start_proxy "$PHASE_DIR" client "$ttl"
    CLIENT_PID=$PROXY_PID
    local url="http://$LISTENER/"
    [[ $(curl -sS --fail --max-time 5 "$url") == ok ]] || die "$name: no answer through the pair"
    log "$name (certificates for $ttl): idle ${IDLE_SECS}s, warm-up ${WARMUP_SECS}s, ${RATE} rps for ${WINDOW_SECS}s"
    mark "$name.idle" before
    bg_wait bounded "$IDLE_SECS" sleep "$IDLE_SECS"
    mark "$name.idle" after
    bg_wait bounded "$WARMUP_SECS" "${OHA[@]}" -q "$RATE" -z "${WARMUP_SECS}s" --output-format quiet "$url"
    mark "$name.load" before
    bg_wait bounded "$WINDOW_SECS" "${OHA[@]}" -q "$RATE" --latency-correction -z "${WINDOW_SECS}s" \
        --output-format json -o "$R/$name.load.oha.json" "$url"
    mark "$name.load" after
    stop "$CLIENT_PID"
    stop "$SERVER_PID"
}

phase long-1 "$LONG_TTL"
phase short "$SHORT_TTL"
phase long-2 "$LONG_TTL"

{
    echo "# $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)); oha, mesh-control and the three proxies share them"
    echo "# load: ${RATE} rps GET over ${CONNS} keep-alive connections for ${WINDOW_SECS}s, after ${IDLE_SECS}s idle, per phase; certificates for ${SHORT_TTL} (short) or ${LONG_TTL} (long)"
    echo "# $(oha --version | head -n1); each proxy with --concurrency 1"
} >"$R/context.txt"
python3 "$ROOT/bench/rotation_summary.py" "$R"
