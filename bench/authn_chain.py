"""Authenticated, authorized GETs per second through the apiserver's filter chain, per credential type,
against a bare aiohttp TLS handler measured in the same run.

    .venv/bin/python bench/authn_chain.py [--seconds 50] [--concurrency 16] [--rounds 3] [--only x509 ...]
                                          [--client raw|aiohttp] [--pin] [--audit]

``--seconds`` is the measured time of all runs together (~60 s wall clock with setup by default).

What runs where (the machine has 2 cores, so client and server must not share one; ``--pin`` also pins
the servers to the last CPU and this client to the first, which helps on an idle machine and hurts
when other work shares it):

1. The chain: ``python -m miniapi`` in a subprocess, with the flags of tests/e2e/cluster.py
   (``--authorization-mode Node,RBAC``, token file, SA keys, bootstrap tokens; no audit file, the
   real default: with no audit backend the real chain has no audit filters, nor has ours).
   ``--audit`` adds ``--audit-log-path`` (a file in the run's temp directory): every request then
   also writes its Event as a JSON line, which is what auditing costs.
2. The baseline: this script with ``--serve-bare`` in a subprocess: the same TLS context
   (:func:`miniapi.tlsconfig.server_ssl_context`, client certificates requested), the same AppRunner
   settings, one catch-all handler answering the very bytes the chain answers for that path.
3. The load generator: this process; C keep-alive TLS connections (``loop.create_connection`` with
   the client's SSLContext), each sending one pre-encoded GET again as soon as the previous answer is
   complete (Content-Length framed; anything but 200 aborts the run), for the same wall time.
   Connections are opened (and a few requests answered) before the clock starts, so TLS handshakes
   are not measured. ``--client aiohttp`` uses one aiohttp ClientSession with C workers instead: that
   client spends more CPU per request (~105-130 us) than the bare server does (~80-100 us), so on two
   cores it is the bare side's bottleneck, which understates bare throughput and flatters the ratio;
   the raw client costs far less per request, so both sides are limited by the server.

Credential types, each reading what RBAC lets it read (never system:masters, so RBAC is evaluated):

    x509        client cert CN=bench-x509           GET configmap default/bench
    token-file  alice (group developers)            GET configmap default/bench
    sa-jwt      TokenRequest for default/bench      GET configmap default/bench
    bootstrap   Secret kube-system/bootstrap-token  GET configmap default/bench (group system:bootstrappers)
    anonymous   no credential                       GET /version (system:public-info-viewer)

Runs are interleaved (each round: every type, bare and chain, order flipped every round) and the
median req/s per side is reported with chain/bare and PASS when >= 60%, next to the lowest and
highest ratio of a single round. ``srv us/req`` is the server process's CPU time per request (from
/proc), which does not depend on how fast the client is, and ``cpu`` its bare/chain ratio: on a
machine shared with other work the throughput ratio follows each process's CPU share, ``cpu`` does not;
``cli%`` is this process's CPU share: near 100% on the bare side means the bare server was faster
than the client could drive it, so the ratio flatters the chain.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miniapi import tlsconfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rawload import counting, encode_get  # noqa: E402

TARGET = 0.60
CM_PATH = "/api/v1/namespaces/default/configmaps/bench"
BOOTSTRAP_ID, BOOTSTRAP_SECRET = "benchx", "0123456789abcdef"
TICK = os.sysconf("SC_CLK_TCK")


# -- the bare baseline server (subprocess) ------------------------------------------------------------
async def serve_bare(port: int, pki: Path, bodies_file: Path) -> None:
    bodies = {p: b.encode() for p, b in json.loads(bodies_file.read_text()).items()}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bodies.get(request.path, b"{}"), content_type="application/json")

    app = web.Application(handler_args={"max_field_size": 16384})
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                           handler_cancellation=True)
    await runner.setup()
    ctx = tlsconfig.server_ssl_context(str(pki / "apiserver.crt"), str(pki / "apiserver.key"),
                                       str(pki / "ca.crt"))
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx, backlog=512, reuse_address=True).start()
    print("bare: serving", flush=True)
    await asyncio.Event().wait()


# -- setup -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cred:
    name: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    cert: tuple[str, str] | None = None


def make_pki(root: Path, url: str) -> tuple[str, str]:
    """The cluster PKI plus a client cert for CN=bench-x509 (not system:masters)."""
    from pki.certs import issue_cert, make_key
    from pki.files import read_cert, read_key
    from pki.init import init_pki
    from pki.pem import dump_cert_pem, dump_key_pem

    init_pki(root, apiserver_url=url, nodes=("node1",), key_type="ec")
    key = make_key("ec")
    cert = issue_cert(read_cert(root / "pki/ca.crt"), read_key(root / "pki/ca.key"), key.public_key(),
                      "bench-x509", ("bench",), client=True)
    crt_path, key_path = root / "bench-x509.crt", root / "bench-x509.key"
    crt_path.write_bytes(dump_cert_pem(cert))
    key_path.write_bytes(dump_key_pem(key))
    return str(crt_path), str(key_path)


def admin_token(root: Path) -> str:
    for line in (root / "tokens.csv").read_text().splitlines():
        token, user = line.split(",")[:2]
        if user == "admin":
            return token
    raise KeyError("admin")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def seed(url: str, root: Path, ctx: ssl.SSLContext) -> str:
    """Objects, RBAC, a bootstrap Secret and an SA token; returns the SA token."""
    headers = {"Authorization": f"Bearer {admin_token(root)}"}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "bench-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                       "resourceNames": ["bench"]}]}
    subjects = [{"kind": "User", "name": "bench-x509", "apiGroup": "rbac.authorization.k8s.io"},
                {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                {"kind": "ServiceAccount", "name": "bench", "namespace": "default"},
                {"kind": "Group", "name": "system:bootstrappers", "apiGroup": "rbac.authorization.k8s.io"}]
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "bench-reader", "namespace": "default"}, "subjects": subjects,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-reader"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
              "metadata": {"name": f"bootstrap-token-{BOOTSTRAP_ID}", "namespace": "kube-system"},
              "data": {"token-id": b64(BOOTSTRAP_ID), "token-secret": b64(BOOTSTRAP_SECRET),
                       "usage-bootstrap-authentication": b64("true")}}
    writes = [
        ("/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "bench", "namespace": "default"}, "data": {"greeting": "hello, bench"}}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
        ("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", binding),
        ("/api/v1/namespaces/default/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "bench", "namespace": "default"}}),
        ("/api/v1/namespaces/kube-system/secrets", secret),
        ("/api/v1/namespaces/default/serviceaccounts/bench/token", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600}}),
    ]
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        for path, body in writes:
            async with s.post(url + path, json=body) as resp:
                answer = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"POST {path}: {resp.status} {answer}")
    return str(answer["status"]["token"])


def client_ctx(pki: Path, cert: tuple[str, str] | None) -> ssl.SSLContext:
    return tlsconfig.client_ssl_context(str(pki / "ca.crt"), *(cert or (None, None)))


# -- load ------------------------------------------------------------------------------------------
@dataclass
class Sample:
    rps: float
    srv_us: float  # server CPU microseconds per request
    cli_pct: float
    srv_pct: float


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


async def load(url: str, cred: Cred, ctx: ssl.SSLContext, seconds: float, concurrency: int,
               server_pid: int, client: str = "raw") -> Sample:
    """C keep-alive connections looping GETs for ``seconds``; the count and the CPU both sides used."""
    run = _load_aiohttp if client == "aiohttp" else _load_raw
    return await run(url, cred, ctx, seconds, concurrency, server_pid)


async def _measure(seconds: float, server_pid: int, start: asyncio.Event, counted: list[int]) -> Sample:
    counted[0] = 0
    srv0, cli0, t0 = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    start.set()
    await asyncio.sleep(seconds)
    done, elapsed = counted[0], time.perf_counter() - t0
    srv1, cli1 = cpu_seconds(server_pid), time.process_time()
    return Sample(done / elapsed, (srv1 - srv0) / max(done, 1) * 1e6, (cli1 - cli0) / elapsed * 100,
                  (srv1 - srv0) / elapsed * 100)


async def _load_aiohttp(url: str, cred: Cred, ctx: ssl.SSLContext, seconds: float, concurrency: int,
                        server_pid: int) -> Sample:
    """The aiohttp client: one ClientSession, C workers. Costs this process more CPU per request than
    the bare server spends, so on two cores it cannot drive the bare server to saturation."""
    conn = aiohttp.TCPConnector(limit=concurrency, ssl=ctx, force_close=False)
    async with aiohttp.ClientSession(connector=conn, headers=cred.headers) as session:
        target = url + cred.path
        stop = False
        counted = [0]

        async def one() -> None:
            async with session.get(target) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{cred.name}: GET {cred.path} -> {resp.status} {await resp.text()}")

        async def worker(ready: asyncio.Event) -> None:
            for _ in range(3):  # warm-up: open this worker's keep-alive connection
                await one()
            await ready.wait()
            while not stop:
                await one()
                counted[0] += 1

        ready = asyncio.Event()
        tasks = [asyncio.create_task(worker(ready)) for _ in range(concurrency)]
        await asyncio.sleep(0.2)
        sample = await _measure(seconds, server_pid, ready, counted)
        stop = True
        await asyncio.gather(*tasks)
    return sample


async def _load_raw(url: str, cred: Cred, ctx: ssl.SSLContext, seconds: float, concurrency: int,
                    server_pid: int) -> Sample:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    request = encode_get(host, int(port), cred.path, cred.headers, agent="bench-authn-chain")
    async with counting(host, int(port), request, ctx, concurrency, cred.name) as counted:
        return await _measure(seconds, server_pid, asyncio.Event(), counted)


# -- orchestration -----------------------------------------------------------------------------------
def pin(pid: int, server: bool) -> None:
    """With 2+ CPUs: servers on the last CPU, this client on the first, so neither steals the other's."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(pid, {cpus[-1] if server else cpus[0]})


def start(args: list[str], log: Path, marker: str, pinned: bool) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if pinned:
        pin(proc.pid, server=True)
    deadline = time.monotonic() + 30
    while marker not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{args[2]} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    return proc


def apiserver_args(root: Path, port: int, audit: bool = False) -> list[str]:
    p = root / "pki"
    return [sys.executable, "-m", "miniapi", "--secure-port", str(port), "--bind-address", "127.0.0.1",
            "--tls-cert-file", str(p / "apiserver.crt"), "--tls-private-key-file", str(p / "apiserver.key"),
            "--client-ca-file", str(p / "ca.crt"), "--token-auth-file", str(root / "tokens.csv"),
            "--service-account-signing-key-file", str(p / "sa.key"),
            "--service-account-key-file", str(p / "sa.pub"),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--authorization-mode", "Node,RBAC", "--enable-bootstrap-token-auth",
            *(["--audit-log-path", str(root / "audit.log")] if audit else [])]


async def fetch_bodies(url: str, creds: list[Cred], pki: Path) -> dict[str, str]:
    """Each path's real answer (checked 200 for every credential), for the bare server to echo."""
    bodies: dict[str, str] = {}
    for cred in creds:
        conn = aiohttp.TCPConnector(ssl=client_ctx(pki, cred.cert))
        async with aiohttp.ClientSession(connector=conn, headers=cred.headers) as s:
            async with s.get(url + cred.path) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise RuntimeError(f"{cred.name}: GET {cred.path} -> {resp.status} {text}")
                bodies[cred.path] = text
    return bodies


async def bench(opts: argparse.Namespace, root: Path) -> int:
    chain_port, bare_port = free_port(), free_port()
    chain_url, bare_url = f"https://127.0.0.1:{chain_port}", f"https://127.0.0.1:{bare_port}"
    pki = root / "pki"
    x509_pair = make_pki(root, chain_url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        chain = start(apiserver_args(root, chain_port, opts.audit), root / "apiserver.log", "serving on", opts.pin)
        procs.append(chain)
        sa_token = await seed(chain_url, root, client_ctx(pki, None))
        alice = next(line.split(",")[0] for line in (root / "tokens.csv").read_text().splitlines()
                     if line.split(",")[1] == "alice")
        creds = [Cred("x509", CM_PATH, cert=x509_pair),
                 Cred("token-file", CM_PATH, {"Authorization": f"Bearer {alice}"}),
                 Cred("sa-jwt", CM_PATH, {"Authorization": f"Bearer {sa_token}"}),
                 Cred("bootstrap", CM_PATH, {"Authorization": f"Bearer {BOOTSTRAP_ID}.{BOOTSTRAP_SECRET}"}),
                 Cred("anonymous", "/version")]
        creds = [c for c in creds if not opts.only or c.name in opts.only]
        (root / "bodies.json").write_text(json.dumps(await fetch_bodies(chain_url, creds, pki)))
        bare = start([sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(bare_port),
                      "--root", str(root)], root / "bare.log", "bare: serving", opts.pin)
        procs.append(bare)
        per_run = opts.seconds / (len(creds) * opts.rounds * 2)
        results: dict[tuple[str, str], list[Sample]] = {}
        for rnd in range(opts.rounds):
            sides = [("bare", bare_url, bare.pid), ("chain", chain_url, chain.pid)]
            for cred in creds:
                ctx = client_ctx(pki, cred.cert)
                for side, url, pid in sides if rnd % 2 == 0 else sides[::-1]:
                    sample = await load(url, cred, ctx, per_run, opts.concurrency, pid, opts.client)
                    results.setdefault((cred.name, side), []).append(sample)
        return report(opts, creds, results, per_run)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def report(opts: argparse.Namespace, creds: list[Cred], results: dict[tuple[str, str], list[Sample]],
           per_run: float) -> int:
    def med(name: str, side: str, attr: str) -> float:
        return float(statistics.median(getattr(s, attr) for s in results[(name, side)]))

    print(f"authn chain vs bare aiohttp: {opts.rounds} rounds x {per_run:.1f}s per run, "
          f"concurrency {opts.concurrency}, keep-alive TLS, medians")
    print(f"{'credential':<11} {'bare r/s':>9} {'chain r/s':>9} {'ratio':>6} {'rounds':>9} {'srv us/req':>11} "
          f"{'cpu':>5} {'srv%':>7} {'cli%':>7}  target")
    failed = 0
    for cred in creds:
        bare, chain = med(cred.name, "bare", "rps"), med(cred.name, "chain", "rps")
        ratio = chain / bare if bare else 0.0
        ok = ratio >= TARGET
        failed += not ok
        per_round = [c.rps / b.rps for b, c in zip(results[(cred.name, "bare")], results[(cred.name, "chain")],
                                                   strict=True) if b.rps]
        spread = f"{min(per_round):.0%}-{max(per_round):.0%}" if per_round else "-"
        bare_us, chain_us = med(cred.name, "bare", "srv_us"), med(cred.name, "chain", "srv_us")
        cpu = bare_us / chain_us if chain_us else 0.0
        srv = f"{med(cred.name, 'bare', 'srv_pct'):.0f}/{med(cred.name, 'chain', 'srv_pct'):.0f}"
        cli = f"{med(cred.name, 'bare', 'cli_pct'):.0f}/{med(cred.name, 'chain', 'cli_pct'):.0f}"
        print(f"{cred.name:<11} {bare:>9.0f} {chain:>9.0f} {ratio:>6.0%} {spread:>9} "
              f"{f'{bare_us:.0f}/{chain_us:.0f}':>11} {cpu:>5.0%} {srv:>7} {cli:>7}  "
              f"{'PASS' if ok else 'FAIL'} (>= {TARGET:.0%})")
    print("(rounds: the lowest and highest chain/bare ratio of one round; cpu: bare/chain server CPU per\n"
          " request, the throughput ratio two servers each with a core of their own would reach; us/req,\n"
          " srv% and cli% are bare/chain)")
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=50.0, help="measured time of all runs together")
    p.add_argument("--concurrency", type=int, default=16, help="connections = concurrent workers")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pin", action="store_true", help="pin servers and client to different CPUs")
    p.add_argument("--audit", action="store_true", help="the chain writes an audit log file (--audit-log-path)")
    p.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                   help="load generator: raw pre-encoded GETs on asyncio TLS connections (default), or the "
                        "aiohttp client (costlier per request than the bare server: it saturates first)")
    p.add_argument("--only", nargs="*", help="credential types to run (default: all)")
    p.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.serve_bare:
        root = Path(opts.root)
        asyncio.run(serve_bare(opts.serve_bare, root / "pki", root / "bodies.json"))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-authn-") as tmp:
        if opts.pin:
            pin(0, server=False)
        return asyncio.run(bench(opts, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
