"""What the benchmarks share to measure: free ports, percentiles, CPU and process trees from /proc."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def process_children() -> dict[int, list[int]]:
    """pid -> child pids, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    return children


def postgres_cpu_s() -> float:
    """CPU seconds of every process named postgres on this machine (the server is shared)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, rest = raw.rpartition(")")
        if head.split("(", 1)[-1] == "postgres":
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def command_cpu_s(command: str) -> float:
    """CPU seconds of every process on this machine whose name (comm) is `command`."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, rest = (entry / "stat").read_text().rpartition(")")
        except OSError:
            continue
        if head.split("(", 1)[-1] == command:
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes(pids: list[int]) -> int:
    """The largest peak resident set size (VmHWM) among `pids`, in bytes; 0 for processes gone."""
    largest = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    largest = max(largest, int(line.split()[1]) * 1024)
    return largest


def machine_busy_s() -> float:
    """CPU seconds this machine spent busy (every core, every process: user, nice, system, irq, softirq,
    steal), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


_POSTGRES_BACKGROUND = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
    "stats collector",
    "archiver",
)


def postgres_cpu_split(database: str) -> tuple[float, float, float]:
    """CPU seconds of the PostgreSQL server's processes: (the backends of `database`, including its
    autovacuum workers; the server's own processes, shared by every database; every other backend)."""
    ours = background = others = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, rest = (entry / "stat").read_text().rpartition(")")
            if head.split("(", 1)[-1] != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = rest.split()
        ticks = int(fields[11]) + int(fields[12])
        if f" {database} " in f"{title} ":
            ours += ticks
        elif not title.startswith("postgres:") or any(name in title for name in _POSTGRES_BACKGROUND):
            background += ticks
        else:
            others += ticks
    tick = os.sysconf("SC_CLK_TCK")
    return ours / tick, background / tick, others / tick
