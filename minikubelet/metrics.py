"""The kubelet's Prometheus endpoints, text exposition format 0.0.4, with real metric names.

``/metrics`` (the kubelet's own registry)::

    # HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox
    # TYPE kubelet_running_pods gauge
    kubelet_running_pods 2

``/metrics/cadvisor`` (per-container cAdvisor series, ``machine_*``) and ``/metrics/resource`` (the
metrics-server feed: ``node_/pod_/container_cpu_usage_seconds_total``, ``*_memory_working_set_bytes``)
carry a millisecond timestamp on each sample, as the real ones do.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from minikubelet.runtime_api import PodView
from minikubelet.stats import StatsProvider, Usage, meminfo, process_start

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PROCESS_START = process_start(os.getpid()) or time.time()
_STATES = ("created", "exited", "running", "unknown")
_STATE_OF = {"waiting": "created", "running": "running", "terminated": "exited"}
Labels = Sequence[tuple[str, str]]


@dataclass
class RequestCounters:
    """kubelet_http_requests_total / kubelet_http_inflight_requests, filled by the server middleware."""

    total: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    inflight: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}" if labels else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Labels, float]], stamp_ms: int | None = None) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        suffix = f" {stamp_ms}" if stamp_ms is not None else ""
        self.lines += [f"{name}{_labels(labels)} {_num(value)}{suffix}" for labels, value in samples]

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def kubelet_metrics(node_name: str, pods: list[PodView], counters: RequestCounters) -> str:
    t = _Text()
    t.family("kubelet_node_name", "gauge", "[ALPHA] The node's name. The count is always 1.",
             [((("node", node_name),), 1)])
    running = [p for p in pods if any(c.state == "running" for c in p.containers)]
    t.family("kubelet_running_pods", "gauge", "[ALPHA] Number of pods that have a running pod sandbox",
             [((), len(running))])
    states = Counter(_STATE_OF.get(c.state, "unknown") for p in pods for c in p.containers)
    t.family("kubelet_running_containers", "gauge", "[ALPHA] Number of containers currently running",
             [((("container_state", s),), states.get(s, 0)) for s in _STATES])
    keys = ("long_running", "method", "path", "server_type")
    t.family("kubelet_http_requests_total", "counter",
             "[ALPHA] Number of HTTP requests received since the server started",
             [(tuple(zip(keys, k, strict=True)), n) for k, n in sorted(counters.total.items())])
    t.family("kubelet_http_inflight_requests", "gauge", "[ALPHA] Number of the inflight http requests",
             [(tuple(zip(keys, k, strict=True)), n) for k, n in sorted(counters.inflight.items())])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    t.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
             [((), round(usage.ru_utime + usage.ru_stime, 6))])
    t.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
             [((), _self_rss())])
    t.family("process_start_time_seconds", "gauge", "[ALPHA] Start time of the process since unix epoch in seconds.",
             [((), round(_PROCESS_START, 2))])
    return t.render()


def _self_rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _container_labels(pod: PodView, container: str, image: str) -> Labels:
    return (("container", container), ("id", f"/kubepods/pod{pod.uid}/{container}"), ("image", image),
            ("name", container), ("namespace", pod.namespace), ("pod", pod.name))


def _images(pod: PodView) -> Mapping[str, str]:
    spec = pod.pod.get("spec") or {}
    return {c.get("name", ""): c.get("image", "") for c in (spec.get("containers") or [])}


def cadvisor_metrics(stats: StatsProvider) -> str:
    now, node = stats.sample_node()
    stamp = int(now * 1000)
    rows = [(_container_labels(p, c.name, _images(p).get(c.name, "")), u) for p, c, u in stats.containers()]
    root: Labels = (("container", ""), ("id", "/"), ("image", ""), ("name", ""), ("namespace", ""), ("pod", ""))
    rows.insert(0, (root, node))
    t = _Text()
    t.family("machine_cpu_cores", "gauge", "Number of logical CPU cores.", [((), os.cpu_count() or 1)])
    t.family("machine_memory_bytes", "gauge", "Amount of memory installed on the machine.",
             [((), meminfo().get("MemTotal", 0))])
    t.family("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.",
             [(labels, u.cpu_ns / 1e9) for labels, u in rows], stamp)
    t.family("container_memory_working_set_bytes", "gauge", "Current working set in bytes.",
             [(labels, u.memory_bytes) for labels, u in rows], stamp)
    t.family("container_memory_rss", "gauge", "Size of RSS in bytes.",
             [(labels, u.rss_bytes) for labels, u in rows], stamp)
    t.family("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds.",
             [(labels, round(u.start, 3)) for labels, u in rows], stamp)
    return t.render()


def resource_metrics(stats: StatsProvider) -> str:
    now, node = stats.sample_node()
    stamp = int(now * 1000)
    rows = stats.containers()
    pods: dict[tuple[str, str], list[Usage]] = {}
    for p, _, u in rows:
        pods.setdefault((p.namespace, p.name), []).append(u)
    t = _Text()
    lbl = [((("container", c.name), ("namespace", p.namespace), ("pod", p.name)), u) for p, c, u in rows]
    t.family("container_cpu_usage_seconds_total", "counter",
             "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
             [(labels, u.cpu_ns / 1e9) for labels, u in lbl], stamp)
    t.family("container_memory_working_set_bytes", "gauge",
             "[STABLE] Current working set of the container in bytes",
             [(labels, u.memory_bytes) for labels, u in lbl], stamp)
    t.family("container_start_time_seconds", "gauge",
             "[STABLE] Start time of the container since unix epoch in seconds",
             [(labels, round(u.start, 3)) for labels, u in lbl], stamp)
    t.family("node_cpu_usage_seconds_total", "counter",
             "[STABLE] Cumulative cpu time consumed by the node in core-seconds", [((), node.cpu_ns / 1e9)], stamp)
    t.family("node_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the node in bytes",
             [((), node.memory_bytes)], stamp)
    pod_rows = [((("namespace", ns), ("pod", name)), us) for (ns, name), us in sorted(pods.items())]
    t.family("pod_cpu_usage_seconds_total", "counter",
             "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
             [(labels, sum(u.cpu_ns for u in us) / 1e9) for labels, us in pod_rows], stamp)
    t.family("pod_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the pod in bytes",
             [(labels, sum(u.memory_bytes for u in us)) for labels, us in pod_rows], stamp)
    t.family("resource_scrape_error", "gauge",
             "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", [((), 0)])
    return t.render()
