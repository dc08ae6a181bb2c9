# Sourced by the benchmarks: background processes that are all stopped
# when the script ends, however it ends; bounded waits.
# The script sets T (its temporary directory) before sourcing this file.

# Processes to stop at the end, and process groups (whole trees) to stop.
PIDS=()
GROUPS_STARTED=()

# processes_cleanup_on_exit NAME: at exit, stop everything started, and
# remove $T unless KEEP=1 or the script failed (then say where it is).
processes_cleanup_on_exit() {
    CLEANUP_NAME=$1
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

cleanup() {
    local rc=$? pid i alive
    trap - EXIT INT TERM
    for pid in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for i in $(seq 20); do
        alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ "${KEEP:-0}" == 1 || $rc -ne 0 ]]; then
        printf '%s: configs, logs and raw results kept in %s\n' "$CLEANUP_NAME" "$T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}

# in_own_group COMMAND...: runs COMMAND in the background in its own
# process group and waits for it: a signal then stops it and its children
# (cargo and its rustc processes) too.
in_own_group() {
    setsid "$@" &
    GROUPS_STARTED+=("$!")
    wait "$!"
}

# watchdog SECONDS: stops the script (and so, through the cleanup,
# everything it started) SECONDS from now.
watchdog() {
    setsid bash -c 'sleep "$1"; echo "stopped at the time limit of $1 s" >&2; kill -TERM "$2"' \
        watchdog "$1" "$$" &
    GROUPS_STARTED+=("$!")
}

# wait_for_file PATH PID [SECONDS]: until PATH exists, while PID lives (10 s at most, or SECONDS).
wait_for_file() {
    local i
    for i in $(seq $((${3:-10} * 20))); do
        [[ -s "$1" ]] && return 0
        kill -0 "$2" 2>/dev/null || die "process $2 exited before writing $1 (logs in $T)"
        sleep 0.05
    done
    die "timed out waiting for $1"
}

# bg_wait [bounded SECONDS] COMMAND...: runs COMMAND in the background and
# waits for it, so that on a signal the traps (and the cleanup that stops it)
# run at once; "bounded" stops it 30 s past its expected duration.
bg_wait() {
    if [[ $1 == bounded ]]; then
        set -- timeout -k 5 "$(($2 + 30))" "${@:3}"
    fi
    "$@" &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid"
}
