#!/usr/bin/env python3
"""Prints the table of bench/proxy-overhead.sh from its raw results.

Reads, in the results directory, for rounds N = 1, 2, ...:
  rows.txt            id, label, protocol (h1|h2), roles ("client=pid,pid server=pid")
  <id>.rate.N.json    oha at the fixed rate (JSON output)
  <id>.max.N.json     oha at the maximum rate (HTTP/1.1 rows)
  <id>.h2load.N.txt   h2load at the maximum rate (h2c rows)
  <id>.cpu            phase (rate.N|max.N), role, before|after, clock ticks (utime+stime)
  <id>.stat           phase, before|after, the machine's cpu line of /proc/stat
  <id>.rss            role, peak RSS in KiB (VmHWM)
  context.txt         lines printed above the table
Each figure in the table is its median over the rounds. Standard library only.
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

# Errors oha reports for requests still in flight when -z ends: not failures.
DEADLINE = "aborted due to deadline"


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def oha_ok(report):
    """Requests answered with 2xx."""
    codes = report.get("statusCodeDistribution") or {}
    return sum(n for code, n in codes.items() if str(code).startswith("2"))


def oha_failures(report):
    """Non-2xx answers and errors other than the deadline cut-off."""
    codes = report.get("statusCodeDistribution") or {}
    bad = sum(n for code, n in codes.items() if not str(code).startswith("2"))
    errors = report.get("errorDistribution") or {}
    bad += sum(n for kind, n in errors.items() if kind != DEADLINE)
    return bad


def h2load(path):
    """(requests per second, succeeded, failed) from h2load's text output."""
    try:
        text = path.read_text()
    except OSError:
        return None
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    counts = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
        text,
    )
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not (rps and counts):
        return None
    failed = sum(int(n) for n in counts.groups()[1:])
    if status:
        failed += sum(int(n) for n in status.groups()[1:])
    return float(rps.group(1)), int(status.group(1) if status else counts.group(1)), failed


def cpu_deltas(path):
    """{(phase, role): ticks used}."""
    marks = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        phase, role, when, ticks = line.split("\t")
        marks[(phase, role, when)] = int(ticks)
    return {
        (phase, role): marks[(phase, role, "after")] - ticks
        for (phase, role, when), ticks in marks.items()
        if when == "before" and (phase, role, "after") in marks
    }


def steal(path):
    """{phase: percent of the machine's CPU time stolen by the hypervisor}."""
    marks = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        phase, when, cpu = line.split("\t")
        # cpu user nice system idle iowait irq softirq steal guest guest_nice
        fields = [int(v) for v in cpu.split()[1:9]]
        marks[(phase, when)] = fields
    out = {}
    for (phase, when), before in marks.items():
        after = marks.get((phase, "after"))
        if when == "before" and after:
            delta = [a - b for a, b in zip(after, before)]
            if sum(delta):
                out[phase] = 100 * delta[7] / sum(delta)
    return out


def rss(path):
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return {role: int(kib) for role, kib in (line.split("\t") for line in lines)}


def ms(seconds):
    return f"{seconds * 1000:.2f}" if seconds is not None else "-"


def delta_ms(value, base):
    if value is None or base is None:
        return "-"
    return f"{(value - base) * 1000:+.2f}"


def per_role(values, roles, fmt):
    if not roles:
        return "-"
    return "/".join(fmt(values.get(role)) if values.get(role) is not None else "?" for role in roles)


def median(values):
    """The median of the values that were measured, or None."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def worst_steal(stolen, phase, rounds):
    """The highest steal percentage of a phase over the rounds."""
    values = [stolen[f"{phase}.{n}"] for n in range(1, rounds + 1) if f"{phase}.{n}" in stolen]
    return f"{max(values):.0f}" if values else "?"


def measure_round(out, row, n, ticks, args, notes):
    """Round n of a row: latency percentiles, max rps and CPU per 1k requests per role."""
    ident, label, proto, roles = row
    rate = read_json(out / f"{ident}.rate.{n}.json")
    latency = (rate or {}).get("latencyPercentiles") or {}
    rate_ok = oha_ok(rate) if rate else 0
    if rate:
        achieved = rate["summary"].get("requestsPerSec") or 0
        if achieved < 0.97 * args.rate:
            notes.append(f"{label}, round {n}: reached only {achieved:.0f} of {args.rate} rps in the fixed-rate run")
        if oha_failures(rate):
            notes.append(f"{label}, round {n}: {oha_failures(rate)} failed requests at {args.rate} rps")
    if proto == "h1":
        peak = read_json(out / f"{ident}.max.{n}.json")
        max_rps = peak["summary"].get("requestsPerSec") if peak else None
        max_ok = oha_ok(peak) if peak else 0
        if peak and oha_failures(peak):
            notes.append(f"{label}, round {n}: {oha_failures(peak)} failed requests at the maximum rate")
    else:
        result = h2load(out / f"{ident}.h2load.{n}.txt")
        max_rps, max_ok = (result[0], result[1]) if result else (None, 0)
        if result and result[2]:
            notes.append(f"{label}, round {n}: {result[2]} failed requests in h2load")

    def cpu(phase, requests):
        return {
            role: ticks[(phase, role)] / args.clk_tck / (requests / 1000)
            for role in roles
            if (phase, role) in ticks and requests
        }

    return {
        "latency": latency,
        "max_rps": max_rps,
        "cpu_rate": cpu(f"rate.{n}", rate_ok),
        "cpu_max": cpu(f"max.{n}", max_ok),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--clk-tck", type=int, default=100)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--h2-streams", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    out = args.results

    rows = []
    for line in (out / "rows.txt").read_text().splitlines():
        ident, label, proto, roles = (line.split("\t") + [""] * 4)[:4]
        role_names = [r.split("=", 1)[0] for r in roles.split()]
        rows.append((ident, label, proto, role_names))

    table = []
    notes = []
    base = {}
    for row in rows:
        ident, label, proto, roles = row
        ticks = cpu_deltas(out / f"{ident}.cpu")
        stolen = steal(out / f"{ident}.stat")
        rounds = [measure_round(out, row, n, ticks, args, notes) for n in range(1, args.rounds + 1)]
        p50, p90, p99 = (median(r["latency"].get(p) for r in rounds) for p in ("p50", "p90", "p99"))
        max_rps = median(r["max_rps"] for r in rounds)
        cpu_rate = {role: median(r["cpu_rate"].get(role) for r in rounds) for role in roles}
        cpu_max = {role: median(r["cpu_max"].get(role) for r in rounds) for role in roles}
        peak_rss = {role: kib / 1024 for role, kib in rss(out / f"{ident}.rss").items()}
        if not roles:
            base[proto] = (p50, p99)
        b50, b99 = base.get(proto, (None, None))
        table.append([
            label,
            ms(p50),
            ms(p90),
            ms(p99),
            delta_ms(p50, b50) if roles else "",
            delta_ms(p99, b99) if roles else "",
            f"{max_rps:.0f}" if max_rps else "-",
            per_role(cpu_rate, roles, lambda v: f"{v:.3f}"),
            per_role(cpu_max, roles, lambda v: f"{v:.3f}"),
            per_role(peak_rss, roles, lambda v: f"{v:.1f}"),
            "/".join(worst_steal(stolen, phase, args.rounds) for phase in ("rate", "max")),
        ])
    header = [
        "path",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "+p50 ms",
        "+p99 ms",
        "max rps",
        "CPU s/1k req @1k rps",
        "CPU s/1k req @max",
        "peak RSS MiB",
        "steal % 1k/max",
    ]
    widths = [max(len(str(r[i])) for r in table + [header]) for i in range(len(header))]

    def fmt(cells):
        parts = [str(cells[0]).ljust(widths[0])]
        parts += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    # nginx cannot speak h2c to its upstream: a row that says so, after the HTTP/1.1 rows.
    h1_rows = sum(1 for _, _, proto, _ in rows if proto == "h1")
    lines = [fmt(row) for row in table]
    if h1_rows < len(rows):
        lines.insert(
            h1_rows,
            "nginx pair h2c".ljust(widths[0]) + "  " + "n/a".rjust(widths[1])
            + "  (nginx cannot proxy_pass to an h2c upstream)",
        )

    context = out / "context.txt"
    if context.exists():
        print(context.read_text().rstrip())
    print(
        f"# latency: oha, {args.rate} rps fixed over {args.conns} connections, latency-corrected;"
        f" max rps: oha -c {args.conns} (h1), h2load -c {args.conns} -m {args.h2_streams} (h2c);"
        f" h2c rows' latency: oha --http2 -c {args.conns} -p {args.h2_streams} -q {args.rate};"
        f" each figure is the median of {args.rounds} round(s), the rows taking turns"
    )
    print(
        "# +p50/+p99: added over the direct row of the same protocol; per-proxy cells are client/server;"
        " nginx counts master+worker;"
        " RSS is the process's peak (VmHWM) so far; steal %: the VM's CPU time taken by the hypervisor"
        " during the fixed-rate/max runs, in the worst round (high values make every number worse)"
    )
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(line)
    for note in notes:
        print(f"! {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
