"""Node and container statistics from /proc: ``/stats/summary`` and the Prometheus endpoints.

The real kubelet asks cAdvisor (cgroups); here a "container" is a process tree, so the numbers are
read from procfs, best effort (a process that exits mid-read simply contributes nothing):

1. node CPU: the ``cpu`` line of /proc/stat (USER_HZ ticks) minus idle and iowait -> core-nanoseconds;
   usageNanoCores is the rate between this reading and the previous one.
2. node memory: /proc/meminfo; usage = MemTotal - MemFree, workingSet = usage - Inactive(file)
   (cAdvisor's definition), rss = AnonPages, available = MemAvailable.
3. container: the container's pid and all its descendants; CPU = utime + stime, memory = the sum of
   their resident sets (working set and RSS alike), start = the pid's start time.

Summary JSON (statsapi.Summary, trimmed to what we can measure)::

    {"node": {"nodeName": "node1", "startTime": "...", "cpu": {"time": "...", "usageNanoCores": 1200,
              "usageCoreNanoSeconds": 9000000}, "memory": {"time": "...", "workingSetBytes": 1, ...}},
     "pods": [{"podRef": {"name": "p1", "namespace": "default", "uid": "..."}, "startTime": "...",
               "containers": [{"name": "c1", "startTime": "...", "cpu": {...}, "memory": {...}}],
               "cpu": {...}, "memory": {...}}]}
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from minikubelet.runtime_api import ContainerView, PodView

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_NS = 1_000_000_000


def rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Usage:
    cpu_ns: int  # cumulative core-nanoseconds
    memory_bytes: int  # resident set (working set here)
    start: float  # epoch seconds
    rss_bytes: int = 0
    usage_bytes: int = 0
    available_bytes: int | None = None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def boot_time(proc: str = "/proc") -> float:
    for line in _read(f"{proc}/stat").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return time.time() - time.monotonic()


def node_usage(proc: str = "/proc") -> Usage:
    cpu_ns = 0
    for line in _read(f"{proc}/stat").splitlines():
        if line.startswith("cpu "):
            fields = [int(x) for x in line.split()[1:]]
            busy = sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0)
            cpu_ns = busy * _NS // _TICK
            break
    mem = meminfo(proc)
    usage = mem.get("MemTotal", 0) - mem.get("MemFree", 0)
    working = max(usage - mem.get("Inactive(file)", 0), 0)
    return Usage(cpu_ns, working, boot_time(proc), rss_bytes=mem.get("AnonPages", 0), usage_bytes=usage,
                 available_bytes=mem.get("MemAvailable"))


def meminfo(proc: str = "/proc") -> dict[str, int]:
    """/proc/meminfo in bytes."""
    mem: dict[str, int] = {}
    for line in _read(f"{proc}/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            mem[key] = int(parts[0]) * 1024
    return mem


def process_start(pid: int, proc: str = "/proc") -> float | None:
    """When pid started, in epoch seconds (field 22 of /proc/PID/stat, ticks after boot)."""
    fields = _proc_stat(pid, proc)
    return boot_time(proc) + int(fields[19]) / _TICK if fields else None


def _proc_stat(pid: int, proc: str) -> list[str] | None:
    raw = _read(f"{proc}/{pid}/stat")
    if not raw or ")" not in raw:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on; comm may hold spaces


def _children_map(proc: str) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return children
    for name in names:
        if name.isdigit():
            fields = _proc_stat(int(name), proc)
            if fields:
                children.setdefault(int(fields[1]), []).append(int(name))
    return children


def tree_usage(pid: int, children: Mapping[int, list[int]], proc: str = "/proc",
               boot: float | None = None) -> Usage | None:
    """CPU and memory of pid and its descendants; None if pid is gone."""
    root = _proc_stat(pid, proc)
    if root is None:
        return None
    start = (boot if boot is not None else boot_time(proc)) + int(root[19]) / _TICK
    cpu = rss = 0
    todo, seen = [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        fields = _proc_stat(p, proc)
        if fields is None:
            continue
        cpu += (int(fields[11]) + int(fields[12])) * _NS // _TICK
        statm = _read(f"{proc}/{p}/statm").split()
        rss += int(statm[1]) * _PAGE if len(statm) > 1 else 0
        todo += children.get(p, [])
    return Usage(cpu, rss, start, rss_bytes=rss, usage_bytes=rss)


class StatsProvider:
    """Samples the node and the runtime's containers; remembers the last sample for CPU rates."""

    def __init__(self, node_name: str, pods: Callable[[], list[PodView]], proc: str = "/proc",
                 clock: Callable[[], float] = time.time) -> None:
        self.node_name, self._pods, self._proc, self._clock = node_name, pods, proc, clock
        self._last: dict[str, tuple[float, int]] = {}
        self.sample_node()

    def _rate(self, key: str, now: float, cpu_ns: int) -> int:
        prev = self._last.get(key)
        self._last[key] = (now, cpu_ns)
        if prev is None or now <= prev[0]:
            return 0
        return max(int((cpu_ns - prev[1]) / (now - prev[0])), 0)

    def sample_node(self) -> tuple[float, Usage]:
        return self._clock(), node_usage(self._proc)

    def containers(self) -> list[tuple[PodView, ContainerView, Usage]]:
        children, boot = _children_map(self._proc), boot_time(self._proc)
        out = []
        for pod in self._pods():
            for c in pod.containers:
                if c.state == "running" and c.pid:
                    usage = tree_usage(c.pid, children, self._proc, boot)
                    if usage is not None:
                        out.append((pod, c, usage))
        return out

    def summary(self) -> dict[str, Any]:
        now, node = self.sample_node()
        stamp = rfc3339(now)
        by_pod: dict[str, list[dict[str, Any]]] = {}
        for pod, c, usage in self.containers():
            key = f"{pod.uid}/{c.name}"
            by_pod.setdefault(pod.uid, []).append({
                "name": c.name, "startTime": rfc3339(usage.start),
                "cpu": self._cpu(key, now, usage), "memory": _memory(stamp, usage)})
        pods = []
        for pod in self._pods():
            containers = by_pod.get(pod.uid, [])
            entry: dict[str, Any] = {
                "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                "startTime": (pod.pod.get("status") or {}).get("startTime") or stamp,
                "containers": containers}
            if containers:
                entry["cpu"] = {"time": stamp, **_sum(c["cpu"] for c in containers)}
                entry["memory"] = {"time": stamp, **_sum(c["memory"] for c in containers)}
            pods.append(entry)
        return {"node": {"nodeName": self.node_name, "startTime": rfc3339(node.start),
                         "cpu": self._cpu("node", now, node), "memory": _memory(stamp, node)},
                "pods": pods}

    def _cpu(self, key: str, now: float, usage: Usage) -> dict[str, Any]:
        return {"time": rfc3339(now), "usageNanoCores": self._rate(key, now, usage.cpu_ns),
                "usageCoreNanoSeconds": usage.cpu_ns}


def _memory(stamp: str, usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"time": stamp, "usageBytes": usage.usage_bytes, "workingSetBytes": usage.memory_bytes,
                           "rssBytes": usage.rss_bytes}
    if usage.available_bytes is not None:
        out["availableBytes"] = usage.available_bytes
    return out


def _sum(items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for item in items:
        for k, v in item.items():
            if isinstance(v, int):
                total[k] = total.get(k, 0) + v
    return total
