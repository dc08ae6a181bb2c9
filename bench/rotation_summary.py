#!/usr/bin/env python3
"""Prints the tables of bench/rotation-cost.sh from its raw results.

Reads, in the results directory, for each phase (long-1, short, long-2)
and window (idle, load), with <w> = <phase>.<window>:
  <w>.cpu.before/after        "process tid nanoseconds" lines: the CPU time
                              of each thread of the client proxy, the server
                              proxy and mesh-control
  <w>.<role>.before/after     the proxy's rotation count and summed seconds
                              (mesh_proxy_workload_cert_rotation_seconds)
  <w>.<role>.rotations        its "workload certificate rotated" log lines
                              of the window (with took_ms)
  <w>.oha.json                the load (oha's JSON output; load windows)
  context.txt                 lines printed above the tables
Standard library only.
"""

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize import oha_failures, read_json  # noqa: E402

ROLES = ("client", "server")
PROCESSES = ("mesh-proxy client", "mesh-proxy server", "mesh-control")
PHASES = ("long-1", "short", "long-2")
WINDOWS = ("idle", "load")
TOOK_MS = re.compile(r"took_ms=([\d.]+)")


def threads(path):
    """{(process, tid): nanoseconds on a CPU} from "process tid ns" lines."""
    out = {}
    for line in path.read_text().splitlines():
        name, tid, ns = line.split()
        out[(name, tid)] = int(ns)
    return out


class Window:
    """One measured window of a phase: <phase>.<window>.* in the results."""

    def __init__(self, out, prefix):
        before, after = (threads(out / f"{prefix}.cpu.{when}") for when in ("before", "after"))
        # CPU milliseconds per process over the window: threads started
        # meanwhile count from zero.
        self.cpu_ms = [
            sum(ns - before.get(key, 0) for key, ns in after.items() if key[0] == name) / 1e6
            for name in ("client", "server", "control")
        ]
        self.rotations = {}
        self.rotation_seconds = 0.0
        self.took_ms = []
        for role in ROLES:
            count0, sum0 = (out / f"{prefix}.{role}.before").read_text().split()[:2]
            count1, sum1 = (out / f"{prefix}.{role}.after").read_text().split()[:2]
            self.rotations[role] = int(count1) - int(count0)
            self.rotation_seconds += float(sum1) - float(sum0)
            lines = (out / f"{prefix}.{role}.rotations").read_text().splitlines()
            self.took_ms += [float(m.group(1)) for m in map(TOOK_MS.search, lines) if m]
        self.load = read_json(out / f"{prefix}.oha.json") or {}

    def percentile_ms(self, key):
        value = (self.load.get("latencyPercentiles") or {}).get(key)
        return f"{value * 1000:.2f}" if value is not None else "-"


def per_rotation(short, longs, index, rotations):
    """CPU ms per rotation of one process, and the noise on that figure."""
    if not rotations:
        return "-"
    base = statistics.mean(w.cpu_ms[index] for w in longs)
    noise = abs(longs[0].cpu_ms[index] - longs[1].cpu_ms[index]) / rotations
    return f"{(short.cpu_ms[index] - base) / rotations:.2f} ± {noise:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    out = args.results
    windows = {
        (phase, window): Window(out, f"{phase}.{window}")
        for phase in PHASES
        for window in WINDOWS
    }

    context = out / "context.txt"
    if context.exists():
        print(context.read_text().rstrip())
    print()
    labels = ["long TTL", "short TTL", "long TTL again"]
    print(f"{'per phase':<40}" + "".join(f"{label:>16}" for label in labels))
    rotations = lambda w: f"{w.rotations['client']}/{w.rotations['server']}"  # noqa: E731
    rows = [
        ("rotations idle (client/server)", "idle", rotations),
        ("rotations under load", "load", rotations),
        *[(f"CPU ms under load, {name}", "load", lambda w, i=i: f"{w.cpu_ms[i]:.1f}")
          for i, name in enumerate(PROCESSES)],
        ("latency p50 ms", "load", lambda w: w.percentile_ms("p50")),
        ("latency p99 ms", "load", lambda w: w.percentile_ms("p99")),
        ("answered requests", "load", lambda w: str(sum((w.load.get("statusCodeDistribution") or {}).values()))),
        ("failed requests", "load", lambda w: str(oha_failures(w.load)) if w.load else "-"),
    ]
    for label, window, value in rows:
        print(f"{label:<40}" + "".join(f"{value(windows[(p, window)]):>16}" for p in PHASES))

    print()
    print("per rotation: short TTL minus the mean of the long runs, over the rotations;")
    print("± the two long runs' difference over the same count (the noise floor)")
    print(f"{'':<40}{'idle':>24}{'under load':>24}")
    cells = {window: [] for window in WINDOWS}
    for window in WINDOWS:
        short = windows[("short", window)]
        longs = [windows[("long-1", window)], windows[("long-2", window)]]
        client, server = short.rotations["client"], short.rotations["server"]
        cells[window] = [
            per_rotation(short, longs, 0, client),
            per_rotation(short, longs, 1, server),
            per_rotation(short, longs, 2, client + server),
        ]
    labels = ["CPU ms, mesh-proxy client", "CPU ms, mesh-proxy server", "CPU ms, mesh-control per certificate"]
    for i, label in enumerate(labels):
        print(f"{label:<40}" + "".join(f"{cells[w][i]:>24}" for w in WINDOWS))
    wall = []
    for window in WINDOWS:
        short = windows[("short", window)]
        count = sum(short.rotations.values())
        took = sorted(short.took_ms)
        if count and took:
            mean = short.rotation_seconds / count * 1000
            wall.append(f"{mean:.1f} / {statistics.median(took):.1f} / {took[-1]:.1f}")
        else:
            wall.append("-")
    print(f"{'wall ms, start to new cert serving':<40}" + "".join(f"{w:>24}" for w in wall))
    print(f"{'':<40}(mean from the metrics / p50 / max from the logs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
