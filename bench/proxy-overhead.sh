#!/usr/bin/env bash
# Data-path overhead of a pair of mesh-proxy sidecars, next to a pair of nginx
# proxies and no proxy at all, on loopback.
#
#   load -> [client-side proxy] -> [server-side proxy] -> echo upstream
#
# The request is always the same: POST with a 1 KiB body, which the echo
# upstream sends back (1 KiB each way). Rows:
#   direct          load -> echo
#   nginx pair      load -> nginx -> nginx -> echo   (HTTP/1.1, keepalive pools)
#   mesh-proxy pair load -> mesh-proxy -> mesh-proxy -> echo (HTTP/1.1)
#   nginx mTLS      load -> nginx -mTLS-> nginx -> echo  (client certificates,
#                   verified against the CA on both sides, sessions reused)
#   mesh-proxy mTLS load -> mesh-proxy -mTLS-> mesh-proxy -> echo (SPIFFE
#                   certificates, SAN checked, as Istio's sidecars)
#   direct h2c      h2c prior knowledge -> echo
#   mesh-proxy h2c  h2c -> mesh-proxy -h2c-> mesh-proxy -h2c-> echo
# (nginx cannot speak h2c to an upstream, so there is no nginx h2c row.)
# After the table, full TLS handshakes per CPU-second of each mTLS server
# side (openssl s_time, a new session per connection, client certificate);
# then the instructions each client-side proxy executes per request, counted
# by callgrind, which a noisy VM does not change.
#
# Per row: latency at a fixed 1000 rps over 16 connections with oha's
# latency correction, then the maximum rate; for h2c the maximum rate comes
# from h2load (-c 16 -m 10). Per proxy process: CPU seconds per 1000 requests
# (utime+stime from /proc/<pid>/stat) and peak RSS (VmHWM); per run, the share
# of the machine's CPU time stolen by the hypervisor (a noisy VM skews rows).
#
# Every row is measured ROUNDS times, the rows taking turns; the table shows
# the median of each figure.
#
# Knobs (environment): RATE (1000), CONNS (16), RATE_SECS (15), MAX_SECS (10),
# H2_SECS (10), H2_STREAMS (10), ROUNDS (3), INSTRUCTIONS (1: the table of
# instructions per request; 0 skips it), INSTR_REQUESTS (2000), MESH_CONCURRENCY (1: one worker thread per
# mesh-proxy, as each nginx runs one worker process), ONLY (row ids separated
# by commas, e.g. nginx-mtls,mesh-mtls: measure only those rows, for more
# rounds of a close comparison), KEEP=1 keeps the temp dir with configs/logs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=${RATE:-1000}
CONNS=${CONNS:-16}
RATE_SECS=${RATE_SECS:-15}
MAX_SECS=${MAX_SECS:-10}
H2_SECS=${H2_SECS:-10}
H2_STREAMS=${H2_STREAMS:-10}
ROUNDS=${ROUNDS:-3}
INSTRUCTIONS=${INSTRUCTIONS:-1}
INSTR_REQUESTS=${INSTR_REQUESTS:-2000}
MESH_CONCURRENCY=${MESH_CONCURRENCY:-1}
ONLY=${ONLY:-}
WARMUP_SECS=1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'proxy-overhead: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin:$HOME/.cargo/bin"
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
((INSTRUCTIONS)) && ! command -v valgrind >/dev/null && missing+=(valgrind)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v oha >/dev/null; then
    log "installing oha"
    cargo install --locked oha
fi
command -v python3 >/dev/null || die "python3 is needed"

# --- processes, cleanup ------------------------------------------------------
T=$(mktemp -d -t proxy-overhead.XXXXXX)
R="$T/results"
mkdir -p "$R"
# shellcheck source=bench/processes.sh
source "$ROOT/bench/processes.sh"
processes_cleanup_on_exit proxy-overhead

# --- build -------------------------------------------------------------------
log "building mesh-proxy and the echo upstream (release)"
in_own_group bash -c "cd '$ROOT' && exec cargo build --release -p mesh-proxy --bin mesh-proxy --example echo_server"
TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
MESH_PROXY="$TARGET_DIR/release/mesh-proxy"
ECHO_SERVER="$TARGET_DIR/release/examples/echo_server"

# A free loopback port, from the kernel (only for nginx, which cannot report port 0).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_port HOST:PORT PID
wait_for_port() {
    local i
    for i in $(seq 200); do
        if python3 -c 'import socket,sys; h,p=sys.argv[1].rsplit(":",1); socket.create_connection((h,int(p)),0.2).close()' "$1" 2>/dev/null; then
            return 0
        fi
        kill -0 "$2" 2>/dev/null || die "process $2 exited before listening on $1 (logs in $T)"
        sleep 0.05
    done
    die "timed out waiting for $1"
}

LOAD_AT_START=$(cut -d" " -f1-3 /proc/loadavg)

# --- the request ---------------------------------------------------------------
BODY="$T/body-1k"
python3 -c 'import sys; sys.stdout.write("a" * 1024)' >"$BODY"

# --- echo upstream -------------------------------------------------------------
log "starting the echo upstream"
"$ECHO_SERVER" --listen 127.0.0.1:0 --address-file "$T/echo.addr" 2>"$T/echo.log" &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
wait_for_file "$T/echo.addr" "$ECHO_PID"
ECHO=$(<"$T/echo.addr")

# --- nginx pair ----------------------------------------------------------------
# nginx_conf DIR LISTEN_PORT NEXT_HOP [LISTEN_EXTRA] [SCHEME] [PROXY_EXTRA]:
# LISTEN_EXTRA follows `listen` (e.g. ssl directives), SCHEME is http or
# https towards the next hop, PROXY_EXTRA goes into the location.
nginx_conf() {
    local listen_extra=${4:-} scheme=${5:-http} proxy_extra=${6:-}
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream next_hop {
        server $3;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$2 $listen_extra
        location / {
            proxy_pass $scheme://next_hop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            $proxy_extra
        }
    }
}
EOF
}

# start_nginx DIR PORT: sets NGINX_PIDS (master,worker).
start_nginx() {
    nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" 2>>"$1/stderr.log" &
    local master=$! worker="" i
    PIDS+=("$master")
    wait_for_port "127.0.0.1:$2" "$master"
    for i in $(seq 100); do
        worker=$(pgrep -P "$master" | head -n1 || true)
        [[ -n "$worker" ]] && break
        sleep 0.05
    done
    [[ -n "$worker" ]] || die "no nginx worker under $master"
    PIDS+=("$worker")
    NGINX_PIDS="$master,$worker"
}

log "starting the nginx pair"
NGINX_SERVER_PORT=$(free_port)
nginx_conf "$T/nginx-server" "$NGINX_SERVER_PORT" "$ECHO" ";"
start_nginx "$T/nginx-server" "$NGINX_SERVER_PORT"
NGINX_SERVER_PIDS=$NGINX_PIDS
NGINX_CLIENT_PORT=$(free_port)
nginx_conf "$T/nginx-client" "$NGINX_CLIENT_PORT" "127.0.0.1:$NGINX_SERVER_PORT" ";"
start_nginx "$T/nginx-client" "$NGINX_CLIENT_PORT"
NGINX_CLIENT_PIDS=$NGINX_PIDS

# --- mesh-proxy pair -------------------------------------------------------------
# mesh_bootstrap FILE LISTENER=NEXT_HOP=h1|h2[=mtls-server|mtls-client] ...:
# one HTTP listener per spec, each routing everything to a one-endpoint
# cluster on loopback port 0; mtls-server terminates mTLS on the listener,
# mtls-client speaks it to the next hop (certificates from $CERTS).
mesh_bootstrap() {
    python3 - "$@" <<'EOF'
import json, os, sys
out, specs = sys.argv[1], sys.argv[2:]
certs = os.environ.get("CERTS", "")
def pem(name):
    return {"filename": os.path.join(certs, name)}
def tls_context(role):
    other = "client" if role == "server" else "server"
    return {
        "alpn_protocols": ["http/1.1"],
        "tls_certificates": [{"certificate_chain": pem(role + ".pem"), "private_key": pem(role + ".key")}],
        "validation_context": {
            "trusted_ca": pem("ca.pem"),
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {
                "exact": "spiffe://cluster.local/ns/default/sa/" + other}}],
        },
    }
listeners, clusters = [], []
for spec in specs:
    name, hop, proto, *tls = spec.split("=")
    tls = tls[0] if tls else ""
    host, port = hop.rsplit(":", 1)
    cluster = {
        "name": f"{name}_next",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": f"{name}_next", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}}]}]},
    }
    if proto == "h2":
        key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        cluster["typed_extension_protocol_options"] = {key: {
            "@type": "type.googleapis.com/" + key,
            "explicit_http_config": {"http2_protocol_options": {}}}}
    if tls == "mtls-client":
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "server.local", "common_tls_context": tls_context("client")}}
    clusters.append(cluster)
    chain = {}
    if tls == "mtls-server":
        chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": True, "common_tls_context": tls_context("server")}}
    listeners.append({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{**chain, "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": {"name": name, "virtual_hosts": [{
                    "name": "all", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": f"{name}_next"}}]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    })
json.dump({
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    "static_resources": {"listeners": listeners, "clusters": clusters},
}, open(out, "w"), indent=2)
EOF
}

# start_mesh DIR [LAUNCHER...]: runs mesh-proxy with DIR/bootstrap.json,
# under LAUNCHER if given (which may take up to a minute to start it); sets
# MESH_PID and writes DIR/listeners (name::ip:port lines).
start_mesh() {
    local dir=$1
    shift
    "$@" "$MESH_PROXY" --bootstrap "$dir/bootstrap.json" --admin-address-path "$dir/admin" \
        --concurrency "$MESH_CONCURRENCY" --drain-timeout 1s --log warn >"$dir/stdout.log" 2>"$dir/stderr.log" &
    MESH_PID=$!
    PIDS+=("$MESH_PID")
    wait_for_file "$dir/admin" "$MESH_PID" $(($# ? 60 : 10))
    curl -sS --fail --max-time 5 "http://$(<"$dir/admin")/listeners" >"$dir/listeners"
}

# listener DIR NAME: the bound address of a mesh-proxy listener.
listener() {
    local line
    line=$(grep -m1 "^$2::" "$1/listeners") || die "no listener $2 in $1/listeners"
    printf '%s\n' "${line#*::}"
}

# --- certificates for the mTLS pairs ---------------------------------------------
# A CA and two ECDSA P-256 leaves with SPIFFE ids, as the mesh's CA issues
# them; the server's also names server.local, which nginx checks.
CERTS="$T/certs"
export CERTS
mkdir -p "$CERTS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj "/O=cluster.local" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" -keyout "$CERTS/ca.key" -out "$CERTS/ca.pem" 2>/dev/null
for role in client server; do
    san="URI:spiffe://cluster.local/ns/default/sa/$role"
    [[ $role == server ]] && san="$san,DNS:server.local"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/" \
        -keyout "$CERTS/$role.key" -out "$CERTS/$role.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" >"$CERTS/$role.ext"
    openssl x509 -req -in "$CERTS/$role.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" \
        -CAcreateserial -days 1 -extfile "$CERTS/$role.ext" -out "$CERTS/$role.pem" 2>/dev/null
done

log "starting the nginx mTLS pair"
NGINX_TLS_SERVER_PORT=$(free_port)
nginx_conf "$T/nginx-tls-server" "$NGINX_TLS_SERVER_PORT" "$ECHO" \
    "ssl; ssl_certificate $CERTS/server.pem; ssl_certificate_key $CERTS/server.key;
        ssl_client_certificate $CERTS/ca.pem; ssl_verify_client on; ssl_session_cache shared:tls:1m;"
start_nginx "$T/nginx-tls-server" "$NGINX_TLS_SERVER_PORT"
NGINX_TLS_SERVER_PIDS=$NGINX_PIDS
NGINX_TLS_CLIENT_PORT=$(free_port)
nginx_conf "$T/nginx-tls-client" "$NGINX_TLS_CLIENT_PORT" "127.0.0.1:$NGINX_TLS_SERVER_PORT" ";" https \
    "proxy_ssl_certificate $CERTS/client.pem; proxy_ssl_certificate_key $CERTS/client.key;
            proxy_ssl_trusted_certificate $CERTS/ca.pem; proxy_ssl_verify on;
            proxy_ssl_name server.local; proxy_ssl_server_name on; proxy_ssl_session_reuse on;"
start_nginx "$T/nginx-tls-client" "$NGINX_TLS_CLIENT_PORT"
NGINX_TLS_CLIENT_PIDS=$NGINX_PIDS

log "starting the mesh-proxy pair"
mkdir -p "$T/mesh-server" "$T/mesh-client"
mesh_bootstrap "$T/mesh-server/bootstrap.json" "inbound=$ECHO=h1" "inbound_h2=$ECHO=h2"
start_mesh "$T/mesh-server"
MESH_SERVER_PIDS=$MESH_PID
mesh_bootstrap "$T/mesh-client/bootstrap.json" \
    "outbound=$(listener "$T/mesh-server" inbound)=h1" \
    "outbound_h2=$(listener "$T/mesh-server" inbound_h2)=h2"
start_mesh "$T/mesh-client"
MESH_CLIENT_PIDS=$MESH_PID

log "starting the mesh-proxy mTLS pair"
mkdir -p "$T/mesh-tls-server" "$T/mesh-tls-client"
mesh_bootstrap "$T/mesh-tls-server/bootstrap.json" "inbound=$ECHO=h1=mtls-server"
start_mesh "$T/mesh-tls-server"
MESH_TLS_SERVER_PIDS=$MESH_PID
mesh_bootstrap "$T/mesh-tls-client/bootstrap.json" \
    "outbound=$(listener "$T/mesh-tls-server" inbound)=h1=mtls-client"
start_mesh "$T/mesh-tls-client"
MESH_TLS_CLIENT_PIDS=$MESH_PID

# --- rows ------------------------------------------------------------------------
# id | label | protocol | URL | roles (role=pid,pid ...)
ROWS=(
    "direct|direct (no proxy)|h1|http://$ECHO/echo|"
    "nginx|nginx pair|h1|http://127.0.0.1:$NGINX_CLIENT_PORT/echo|client=$NGINX_CLIENT_PIDS server=$NGINX_SERVER_PIDS"
    "mesh|mesh-proxy pair|h1|http://$(listener "$T/mesh-client" outbound)/echo|client=$MESH_CLIENT_PIDS server=$MESH_SERVER_PIDS"
    "nginx-mtls|nginx pair, mTLS|h1|http://127.0.0.1:$NGINX_TLS_CLIENT_PORT/echo|client=$NGINX_TLS_CLIENT_PIDS server=$NGINX_TLS_SERVER_PIDS"
    "mesh-mtls|mesh-proxy pair, mTLS|h1|http://$(listener "$T/mesh-tls-client" outbound)/echo|client=$MESH_TLS_CLIENT_PIDS server=$MESH_TLS_SERVER_PIDS"
    "direct-h2|direct h2c|h2|http://$ECHO/echo|"
    "mesh-h2|mesh-proxy pair h2c|h2|http://$(listener "$T/mesh-client" outbound_h2)/echo|client=$MESH_CLIENT_PIDS server=$MESH_SERVER_PIDS"
)
if [[ -n $ONLY ]]; then
    selected=()
    for row in "${ROWS[@]}"; do
        [[ ",$ONLY," == *",${row%%|*},"* ]] && selected+=("$row")
    done
    ((${#selected[@]})) || die "ONLY=$ONLY names no row"
    ROWS=("${selected[@]}")
fi
: >"$R/rows.txt"
for row in "${ROWS[@]}"; do
    IFS='|' read -r id label proto url roles <<<"$row"
    printf '%s\t%s\t%s\t%s\n' "$id" "$label" "$proto" "$roles" >>"$R/rows.txt"
done

# Sanity: every path echoes the 1 KiB body back intact.
for row in "${ROWS[@]}"; do
    IFS='|' read -r id label proto url roles <<<"$row"
    flags=(--http1.1)
    [[ $proto == h2 ]] && flags=(--http2-prior-knowledge)
    curl -sS --fail --max-time 5 "${flags[@]}" -X POST --data-binary "@$BODY" \
        -H 'content-type: application/octet-stream' -o "$T/check.$id" "$url" ||
        die "$label: request failed"
    cmp -s "$BODY" "$T/check.$id" || die "$label: the body did not come back intact"
done

# cpu_ticks PID,PID...: utime+stime of all the processes' threads, in clock ticks.
cpu_ticks() {
    local total=0 pid stat rest
    for pid in ${1//,/ }; do
        stat=$(<"/proc/$pid/stat")
        rest=${stat##*) }  # fields from 3 (state) on; comm may hold spaces
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# hwm_kib PID,PID...: summed peak RSS (VmHWM) in KiB.
hwm_kib() {
    local total=0 pid kib
    for pid in ${1//,/ }; do
        kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
        total=$((total + kib))
    done
    echo "$total"
}

# snapshot ROW_ID ROLES PHASE WHEN: append "phase role when ticks" lines, and
# the machine's CPU line from /proc/stat (for the steal time of a noisy VM).
snapshot() {
    local role
    for role in $2; do
        printf '%s\t%s\t%s\t%s\n' "$3" "${role%%=*}" "$4" "$(cpu_ticks "${role#*=}")" >>"$R/$1.cpu"
    done
    printf '%s\t%s\t%s\n' "$3" "$4" "$(head -n1 /proc/stat)" >>"$R/$1.stat"
}

# measure ROW_ID ROLES PHASE COMMAND...: run the load with CPU snapshots around it.
measure() {
    local id=$1 roles=$2 phase=$3
    shift 3
    snapshot "$id" "$roles" "$phase" before
    bg_wait "$@"
    snapshot "$id" "$roles" "$phase" after
}

# Every load run is bounded: per-request timeout, and a hard stop well past its duration.
OHA=(oha --no-tui -t 5s -m POST -D "$BODY" -T application/octet-stream -c "$CONNS")

# Rounds go through every row in turn, so that a noisy stretch of the VM
# hits all rows alike; the table shows each figure's median over the rounds.
for round in $(seq "$ROUNDS"); do
    for row in "${ROWS[@]}"; do
        IFS='|' read -r id label proto url roles <<<"$row"
        if ((round == 1)); then
            : >"$R/$id.cpu"
            : >"$R/$id.stat"
        fi
        if [[ $proto == h1 ]]; then
            log "$label (round $round of $ROUNDS): ${RATE} rps for ${RATE_SECS}s, max for ${MAX_SECS}s"
            ((round > 1)) || bg_wait bounded "$WARMUP_SECS" "${OHA[@]}" -z "${WARMUP_SECS}s" --output-format quiet "$url"
            measure "$id" "$roles" "rate.$round" bounded "$RATE_SECS" "${OHA[@]}" -q "$RATE" --latency-correction \
                -z "${RATE_SECS}s" --output-format json -o "$R/$id.rate.$round.json" "$url"
            measure "$id" "$roles" "max.$round" bounded "$MAX_SECS" "${OHA[@]}" -z "${MAX_SECS}s" \
                --output-format json -o "$R/$id.max.$round.json" "$url"
        else
            log "$label (round $round of $ROUNDS): ${RATE} rps for ${H2_SECS}s (oha), max for ${H2_SECS}s (h2load)"
            ((round > 1)) || bg_wait bounded "$WARMUP_SECS" "${OHA[@]}" --http2 -p "$H2_STREAMS" -z "${WARMUP_SECS}s" \
                --output-format quiet "$url"
            measure "$id" "$roles" "rate.$round" bounded "$H2_SECS" "${OHA[@]}" --http2 -p "$H2_STREAMS" -q "$RATE" \
                --latency-correction -z "${H2_SECS}s" --output-format json -o "$R/$id.rate.$round.json" "$url"
            measure "$id" "$roles" "max.$round" bounded "$H2_SECS" h2load -c "$CONNS" -m "$H2_STREAMS" -D "$H2_SECS" \
                -d "$BODY" -H 'content-type: application/octet-stream' "$url" >"$R/$id.h2load.$round.txt"
        fi
    done
done
for row in "${ROWS[@]}"; do
    IFS='|' read -r id label proto url roles <<<"$row"
    : >"$R/$id.rss"
    for role in $roles; do
        printf '%s\t%s\n' "${role%%=*}" "$(hwm_kib "${role#*=}")" >>"$R/$id.rss"
    done
done

{
    echo "# $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)); load generator, echo upstream and proxies share them"
    echo "# load average before the run: $LOAD_AT_START (other work on the machine skews every row)"
    echo "# request: POST /echo with a 1 KiB body, echoed back (1 KiB response); loopback 127.0.0.1"
    echo "# $(oha --version | head -n1), $(h2load --version | head -n1), $(nginx -v 2>&1 | head -n1)"
} >"$R/context.txt"
python3 "$ROOT/bench/summarize.py" "$R" --clk-tck "$(getconf CLK_TCK)" --rate "$RATE" --conns "$CONNS" \
    --h2-streams "$H2_STREAMS" --rounds "$ROUNDS"

# --- full handshakes ----------------------------------------------------------------
# handshakes LABEL ADDRESS PIDS: openssl s_time opens a new session per
# connection with the client certificate for HANDSHAKE_SECS; the server
# side's CPU time gives full handshakes per CPU-second.
HANDSHAKE_SECS=${HANDSHAKE_SECS:-5}
handshakes() {
    local before after connections cpu
    before=$(cpu_ticks "$3")
    connections=$(bg_wait bounded "$HANDSHAKE_SECS" openssl s_time -connect "$2" -new -time "$HANDSHAKE_SECS" \
        -cert "$CERTS/client.pem" -key "$CERTS/client.key" -CAfile "$CERTS/ca.pem" 2>/dev/null |
        awk '/connections in [0-9]+ real seconds/ {print $1; exit}')
    after=$(cpu_ticks "$3")
    cpu=$(python3 -c 'import sys; print(max(int(sys.argv[2]) - int(sys.argv[1]), 1) / int(sys.argv[3]))' \
        "$before" "$after" "$(getconf CLK_TCK)")
    python3 -c 'import sys; n, cpu, secs = int(sys.argv[2] or 0), float(sys.argv[3]), int(sys.argv[4]); print(f"{sys.argv[1]:<34} {n / secs:>10.0f} {n / cpu:>16.0f}")' \
        "$1" "${connections:-0}" "$cpu" "$HANDSHAKE_SECS"
}
echo
printf '%-34s %10s %16s\n' "mTLS server side" "handshakes/s" "per CPU-second"
handshakes "nginx (ssl_verify_client on)" "127.0.0.1:$NGINX_TLS_SERVER_PORT" "$NGINX_TLS_SERVER_PIDS"
handshakes "mesh-proxy (require_client_cert)" "$(listener "$T/mesh-tls-server" inbound)" "$MESH_TLS_SERVER_PIDS"

# --- instructions per request ----------------------------------------------------
# CPU time on a shared VM moves by several per cent from run to run; the
# instructions a proxy executes per request do not. A second client-side
# proxy of each pair runs under callgrind with the same configuration (for
# nginx: one process, another port), towards the same server side. After
# a warm-up (upstream connections and TLS sessions made), INSTR_REQUESTS
# requests at 200 rps are counted; the load's own CONNS connections are new
# in that run, which adds under 1 k per request at the default 2000. Instructions are not time (a cache miss costs
# more than an add, and `rep movsb` counts one per byte), but a change in
# the count is a change in the work.

# Runs a program under callgrind with counting off, until count_requests.
CALLGRIND=(valgrind --tool=callgrind --instr-atstart=no)

# count_requests LABEL DIR PID URL: counts the instructions of the proxy at
# PID (callgrind writing DIR/callgrind.out) for INSTR_REQUESTS requests,
# prints LABEL and the count per request, and stops the proxy.
count_requests() {
    local total
    bg_wait bounded 60 "${OHA[@]}" -q 200 -n 400 --output-format quiet "$4"
    callgrind_control -i on "$3" >/dev/null 2>&1
    bg_wait bounded 120 "${OHA[@]}" -q 200 -n "$INSTR_REQUESTS" --output-format quiet "$4"
    callgrind_control -i off "$3" >/dev/null 2>&1
    callgrind_control -d "$3" >/dev/null 2>&1
    kill "$3" 2>/dev/null || true
    wait "$3" 2>/dev/null || true
    total=$(awk '/^totals:/ {print $2; exit}' "$2/callgrind.out.1")
    printf '%-34s %14s\n' "$1" "$((total / INSTR_REQUESTS))"
}

# mesh_instructions LABEL DIR: a mesh-proxy with DIR's bootstrap.
mesh_instructions() {
    local dir="$T/callgrind-${2##*/}"
    mkdir -p "$dir"
    cp "$2/bootstrap.json" "$dir/"
    start_mesh "$dir" "${CALLGRIND[@]}" --callgrind-out-file="$dir/callgrind.out"
    count_requests "$1" "$dir" "$MESH_PID" "http://$(listener "$dir" outbound)/echo"
}

# nginx_instructions LABEL DIR: nginx with DIR's configuration in one process.
nginx_instructions() {
    local dir="$T/callgrind-${2##*/}" port pid
    port=$(free_port)
    mkdir -p "$dir"
    sed -e "s#listen 127.0.0.1:[0-9]*#listen 127.0.0.1:$port#" -e 's#master_process on#master_process off#' \
        -e "s#$2/#$dir/#g" "$2/nginx.conf" >"$dir/nginx.conf"
    "${CALLGRIND[@]}" --callgrind-out-file="$dir/callgrind.out" nginx -p "$dir" -c "$dir/nginx.conf" \
        -e "$dir/error.log" >"$dir/valgrind.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_for_port "127.0.0.1:$port" "$pid"
    count_requests "$1" "$dir" "$pid" "http://127.0.0.1:$port/echo"
}

if ((INSTRUCTIONS)); then
    log "counting instructions per request (callgrind)"
    echo
    printf '%-34s %14s\n' "client-side proxy" "instructions/request"
    nginx_instructions "nginx" "$T/nginx-client"
    mesh_instructions "mesh-proxy" "$T/mesh-client"
    nginx_instructions "nginx, mTLS" "$T/nginx-tls-client"
    mesh_instructions "mesh-proxy, mTLS" "$T/mesh-tls-client"
fi
