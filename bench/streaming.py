"""Port-forward throughput and exec latency through apiserver -> kubelet -> pod, against direct TCP to
the pod measured in the same run.

    .venv/bin/python bench/streaming.py [--mb 200] [--rounds 3] [--exec-rounds 200] [--no-exec]

Setup (untimed): PKI + ``python -m miniapi`` + controller-manager (tests/e2e/cluster.py, with
``--kubelet-client-certificate/-key``), one ``minikubelet`` on 127.0.8.2 with webhook authn/authz
(as hardened as the tests run it), one pod running the servers of
tests/integration/portforward_kit.py on its pod IP, and the real ``kubectl port-forward``.

Measured, each round interleaving the paths (median of ``--rounds``):

1. ``direct``: this process -> ``<podIP>:7003`` (upload, the pod counts and answers) and
   ``<podIP>:7002`` (download, the pod sends N bytes). The baseline.
2. ``kubectl port-forward``: this process -> ``127.0.0.1:<local>`` -> kubectl -> WebSocket
   ``SPDY/3.1+portforward.k8s.io`` -> apiserver -> SPDY/3.1 over TLS -> kubelet -> pod. Every hop a
   real process; both TLS legs encrypted.
3. ``in-process tunnel``: the same server path, with tests/integration/portforward_kit.TunnelClient
   (SPDY framing in Python) instead of kubectl + a local socket.
4. ``exec``: 1-byte round trips (p50/p90 over ``--exec-rounds``) through a ``v5.channel.k8s.io``
   WebSocket opened by this process straight to the apiserver (``cat`` in the pod echoes), so the
   client adds as little as possible to the server path.

The client is blocking sockets in a worker thread (large sendall/recv_into), the cheapest Python
client there is; the machine has 2 cores shared by client, kubectl, apiserver, kubelet and pod.
Targets: port-forward >= 25% of direct and >= 100 MB/s; exec p50 < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miniapi.tlsconfig import client_ssl_context  # noqa: E402
from tests.e2e.cluster import Cluster, free_port, make_cluster  # noqa: E402
from tests.integration.kubelet_harness import KubeletProc, admin, container_status, wait_for, wait_node_ready  # noqa: E402, I001
from tests.integration.portforward_kit import COUNT, SOURCE, TunnelClient, pod_manifest  # noqa: E402
from tests.integration.test_pod_logs import kubelet_client_args, start_kubelet  # noqa: E402

NODE_IP = "127.0.8.2"
BLOCK = 1 << 20
TARGET_RATIO, TARGET_MBS, TARGET_P50_MS = 0.25, 100.0, 5.0


# -- the byte movers (blocking, run in a thread) ------------------------------------------------------------

def upload(host: str, port: int, n: int) -> float:
    """Send n bytes, half-close, wait for the pod's count; seconds from connect to the answer."""
    buf = memoryview(os.urandom(BLOCK))
    start = time.perf_counter()
    with socket.create_connection((host, port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        left = n
        while left > 0:
            k = min(left, BLOCK)
            s.sendall(buf[:k])
            left -= k
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(64):
            answer += chunk
    elapsed = time.perf_counter() - start
    if int(answer.split()[0]) != n:
        raise RuntimeError(f"the pod counted {answer!r}, sent {n}")
    return elapsed


def download(host: str, port: int, n: int) -> float:
    buf = bytearray(BLOCK)
    start = time.perf_counter()
    with socket.create_connection((host, port)) as s:
        s.sendall(f"{n}\n".encode())
        got = 0
        while k := s.recv_into(buf):
            got += k
    elapsed = time.perf_counter() - start
    if got != n:
        raise RuntimeError(f"received {got} of {n} bytes")
    return elapsed


async def tunnel_upload(http: aiohttp.ClientSession, url: str, ctx: object, n: int) -> float:
    block = os.urandom(BLOCK)
    start = time.perf_counter()
    client = await TunnelClient.connect(http, url, ctx)  # type: ignore[arg-type]
    try:
        stream = await client.open(COUNT)
        left = n
        while left > 0:
            k = min(left, BLOCK)
            await stream.send(block[:k], fin=k == left)
            left -= k
        answer = await stream.read_all()
    finally:
        await client.close()
    elapsed = time.perf_counter() - start
    if int(answer.split()[0]) != n:
        raise RuntimeError(f"the pod counted {answer!r}, sent {n}")
    return elapsed


# -- exec --------------------------------------------------------------------------------------------------

async def exec_latency(http: aiohttp.ClientSession, url: str, ctx: object, rounds: int) -> list[float]:
    """Round trips of one byte through ``cat`` over v5.channel.k8s.io: stdin frame out, stdout frame back."""
    ws = await http.ws_connect(url, protocols=("v5.channel.k8s.io",), ssl=ctx)  # type: ignore[arg-type]
    samples: list[float] = []
    try:
        for i in range(rounds + 10):
            byte = bytes([65 + i % 26])
            start = time.perf_counter()
            await ws.send_bytes(b"\x00" + byte)
            while True:
                msg = await asyncio.wait_for(ws.receive(), 10)
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    raise RuntimeError(f"exec ended: {msg.type} {msg.data!r} {msg.extra!r}")
                if msg.data[:1] == b"\x01" and msg.data[1:]:
                    break
            if i >= 10:  # warm-up excluded
                samples.append(time.perf_counter() - start)
            if msg.data[1:] != byte:
                raise RuntimeError(f"echo {msg.data!r}, sent {byte!r}")
        await ws.send_bytes(b"\xff\x00")  # stdin EOF: cat ends
    finally:
        await ws.close()
    return samples


# -- setup ------------------------------------------------------------------------------------------------

def start(tmp: Path) -> tuple[Cluster, KubeletProc]:
    cluster = make_cluster(tmp, extra_args=kubelet_client_args(tmp))
    kubelet = start_kubelet(cluster, "node1", NODE_IP, [
        "--anonymous-auth=false", "--authentication-token-webhook", "--authorization-mode=Webhook",
        "--client-ca-file", str(cluster.pki / "ca.crt")])
    return cluster, kubelet


async def pod_ready(cluster: Cluster) -> str:
    async with admin(cluster) as kc:
        await wait_node_ready(kc, "node1")
        await kc.create("pods", pod_manifest("bench", "node1"), "default")
        pod = await wait_for(kc, "pods", lambda p: bool(container_status(p).get("ready")), name="bench",
                             namespace="default")
    ip = str(((pod or {}).get("status") or {}).get("podIP"))
    for _ in range(100):
        try:
            socket.create_connection((ip, COUNT), 1).close()
            return ip
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the pod never listened on {ip}:{COUNT}")


def port_forward(cluster: Cluster) -> tuple[subprocess.Popen[str], int, int]:
    kubectl = cluster.kubectl("admin.conf")
    up, down = free_port(), free_port()
    proc = subprocess.Popen([kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "port-forward", "pod/bench",
                             f"{up}:{COUNT}", f"{down}:{SOURCE}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    while f"Forwarding from 127.0.0.1:{down}" not in proc.stdout.readline():
        if proc.poll() is not None:
            raise RuntimeError(f"kubectl port-forward exited: {proc.stderr.read() if proc.stderr else ''}")
    return proc, up, down


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time per MB moved, per process of the chain (what the 2 cores can afford, whatever else runs)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.spent = {name: 0.0 for name in pids}
        self.moved = 0

    async def measure(self, step: Any, n: int) -> float:
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        elapsed: float = await step
        for name, pid in self.pids.items():
            self.spent[name] += cpu_seconds(pid) - before[name]
        self.moved += n
        return elapsed

    def per_mb(self) -> dict[str, float]:
        return {name: spent * 1000 / (self.moved / 1e6) for name, spent in self.spent.items()}


def mbs(n: int, seconds: float) -> float:
    return n / seconds / 1e6


def row(name: str, n: int, times: list[float], base: float | None) -> str:
    rate = mbs(n, statistics.median(times))
    ratio = f"{rate / base:6.1%}" if base else "     -"
    return f"  {name:38} {rate:8.1f} MB/s  {ratio}"


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="MB per transfer (default 200)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--exec-rounds", type=int, default=200)
    ap.add_argument("--no-exec", action="store_true", help="skip the exec latency part")
    ap.add_argument("--no-inproc", action="store_true", help="skip the in-process tunnel client")
    args = ap.parse_args()
    n = args.mb * 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    cluster, kubelet = start(tmp)
    proc: subprocess.Popen[str] | None = None
    try:
        ip = await pod_ready(cluster)
        proc, up_port, down_port = port_forward(cluster)
        ctx = client_ssl_context(str(cluster.pki / "ca.crt"), str(cluster.root / "admin-client.pem"))
        base = f"{cluster.url.replace('https', 'wss')}/api/v1/namespaces/default/pods/bench"
        results: dict[str, list[float]] = {k: [] for k in ("du", "dd", "ku", "kd", "tu")}
        assert cluster.proc is not None and kubelet.proc is not None
        meter = CpuMeter({"kubectl": proc.pid, "apiserver": cluster.proc.pid, "kubelet": kubelet.proc.pid,
                          "client": os.getpid()})
        run: Callable[..., object] = asyncio.to_thread
        async with aiohttp.ClientSession() as http:
            await run(upload, "127.0.0.1", up_port, 1_000_000)  # warm-up: kubectl's first stream
            for r in range(args.rounds):
                steps = [("du", run(upload, ip, COUNT, n)), ("ku", run(upload, "127.0.0.1", up_port, n)),
                         ("dd", run(download, ip, SOURCE, n)), ("kd", run(download, "127.0.0.1", down_port, n))]
                if not args.no_inproc:
                    steps.append(("tu", tunnel_upload(http, f"{base}/portforward", ctx, n)))
                for key, step in (steps if r % 2 == 0 else steps[::-1]):
                    if key in ("ku", "kd"):
                        results[key].append(await meter.measure(step, n))
                    else:
                        results[key].append(await step)  # type: ignore[misc]
            samples = [] if args.no_exec else await exec_latency(
                http, f"{base}/exec?command=cat&container=c1&stdin=true&stdout=true", ctx, args.exec_rounds)
        direct_up, direct_down = mbs(n, statistics.median(results["du"])), mbs(n, statistics.median(results["dd"]))
        print(f"port-forward, {args.mb} MB per transfer, median of {args.rounds} (ratio = vs direct TCP):")
        print(row("direct TCP upload (baseline)", n, results["du"], None))
        print(row("kubectl port-forward upload", n, results["ku"], direct_up))
        if results["tu"]:
            print(row("in-process tunnel client upload", n, results["tu"], direct_up))
        print(row("direct TCP download (baseline)", n, results["dd"], None))
        print(row("kubectl port-forward download", n, results["kd"], direct_down))
        worst = min(mbs(n, statistics.median(results["ku"])) / direct_up,
                    mbs(n, statistics.median(results["kd"])) / direct_down)
        slowest = min(mbs(n, statistics.median(results[k])) for k in ("ku", "kd"))
        ok = worst >= TARGET_RATIO and slowest >= TARGET_MBS
        print(f"  target >= {TARGET_RATIO:.0%} of direct and >= {TARGET_MBS:.0f} MB/s: "
              f"{'PASS' if ok else 'FAIL'} (worst ratio {worst:.1%}, slowest {slowest:.0f} MB/s)")
        per_mb = meter.per_mb()
        cores = len(os.sched_getaffinity(0))
        print("  CPU per MB through kubectl port-forward: "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in per_mb.items())
              + f" (pod not counted); {cores} cores afford at most {cores * 1000 / sum(per_mb.values()):.0f} MB/s "
              f"for this chain, kubectl alone {1000 / per_mb['kubectl']:.0f} MB/s per core")
        if samples:
            ms = sorted(s * 1000 for s in samples)
            p50, p90 = statistics.median(ms), ms[int(len(ms) * 0.9)]
            print(f"exec 1-byte echo round trip over v5.channel.k8s.io, {len(ms)} samples: p50 {p50:.2f} ms, "
                  f"p90 {p90:.2f} ms, max {ms[-1]:.2f} ms; target p50 < {TARGET_P50_MS:.0f} ms: "
                  f"{'PASS' if p50 < TARGET_P50_MS else 'FAIL'}")
            ok = ok and p50 < TARGET_P50_MS
        return 0 if ok else 1
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        kubelet.cleanup()
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
