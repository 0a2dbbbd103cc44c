"""Throughput and round trip through each apiserver -> node path, in one run: direct, SSH tunnel, agent tunnel.

    .venv/bin/python bench/tunnels.py [--mib 256] [--pings 2000] [--runs 3]

Setup (all on loopback, node address 127.0.10.2): a sink/echo process on the node (``--sink`` mode of this
script) standing in for a kubelet or a pod, with a plain port and a TLS port (kubelet-like: every
apiserver -> kubelet connection carries TLS end to end *inside* the tunnel); a real OpenSSH sshd for
the node; a konnectivity server (UDS frontend) and agent (mTLS) as their own processes. This process
plays the apiserver and reaches the sink through each Dialer:

1. ``direct``  - :class:`~miniapi.proxy.dialer.DirectDialer` (the baseline);
2. ``ssh``     - :class:`~miniapi.proxy.ssh.SSHTunnelDialer` (asyncssh, one connection to the node's sshd);
3. ``openssh`` - an OpenSSH ``ssh -N -L`` forward over the same sshd (the SSH baseline), same cipher;
4. ``agent``   - :class:`~miniapi.proxy.egress.HTTPConnectDialer` -> konnectivity server -> agent.

Measured per mode: upload throughput (port-forward-like: N MiB pushed, the sink acknowledges the
count) over the plain and the TLS port, and the median round trip of a 1-byte echo (what an exec
keystroke costs on the wire). The modes take turns: each of ``--runs`` rounds measures every mode, and
a ratio is the median of the rounds' ratios, so a load change on a shared machine hits both sides of it.
Printed: the medians, the ratios ssh/openssh and agent/direct with their targets (>= 0.5 each), and
for direct and agent the CPU time per MB of every process on the path (this one, the sink, and the
konnectivity server and agent): a figure that, unlike MB/s, does not depend on how busy the machine is,
and from it the most the agent path could move if it had every core to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miniapi.proxy.dialer import Dialer, DirectDialer  # noqa: E402
from miniapi.proxy.egress import Connection, HTTPConnectDialer  # noqa: E402
from miniapi.proxy.errors import DialError  # noqa: E402
from miniapi.proxy.ssh import SSHOptions, SSHTunnelDialer, State  # noqa: E402
from miniapi.proxy.sshkeys import authorized_key  # noqa: E402
from miniapi.store import MemoryStore  # noqa: E402
from minilab.sshd import NodeSSHD, pick_ssh_port, sshd_binary  # noqa: E402
from minilab.tunnels import agent_argv, konnectivity_pki, server_argv  # noqa: E402
from pki.certs import issue_cert, make_ca, make_key  # noqa: E402
from pki.files import write_cert, write_key  # noqa: E402

NODE = "127.0.10.2"
CIPHER = "aes128-gcm@openssh.com"
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


# -- the node side: sink + echo ---------------------------------------------------------------------------
async def _serve_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        kind = await reader.readexactly(1)
        if kind == b"T":  # upload: 8-byte length, then that many bytes; answer the count
            want, got = int.from_bytes(await reader.readexactly(8), "big"), 0
            while got < want and (data := await reader.read(1 << 18)):
                got += len(data)
            writer.write(got.to_bytes(8, "big"))
        else:  # echo
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def sink_main(port: int, tls_port: int, cert: str, key: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    await asyncio.start_server(_serve_conn, NODE, port, limit=1 << 20)
    await asyncio.start_server(_serve_conn, NODE, tls_port, ssl=ctx, limit=1 << 20)
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- the apiserver side -----------------------------------------------------------------------------------
async def open_(dialer: Dialer, port: int, tls: bool) -> Streams:
    reader, writer = await dialer.dial(NODE, port)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        await writer.start_tls(ctx, server_hostname=NODE)
    return reader, writer


async def upload(dialer: Dialer, port: int, tls: bool, size: int) -> float:
    reader, writer = await open_(dialer, port, tls)
    chunk = os.urandom(1 << 16)
    t0 = time.perf_counter()
    writer.write(b"T" + size.to_bytes(8, "big"))
    for _ in range(size // len(chunk)):
        writer.write(chunk)
        await writer.drain()
    got = int.from_bytes(await reader.readexactly(8), "big")
    elapsed = time.perf_counter() - t0
    writer.close()
    assert got == size, (got, size)
    return size / elapsed / 1e6


async def round_trip(dialer: Dialer, port: int, pings: int) -> float:
    reader, writer = await open_(dialer, port, False)
    writer.write(b"E")
    samples = []
    for _ in range(pings):
        t0 = time.perf_counter()
        writer.write(b"x")
        await reader.readexactly(1)
        samples.append(time.perf_counter() - t0)
    writer.close()
    return statistics.median(samples) * 1e6


def wait_port(host: str, port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{host}:{port} did not open")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Setup:
    """Every process of the bench; ``close()`` stops them all."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port, self.tls_port = free_port(NODE), free_port(NODE)
        ca, ca_key = make_ca("bench", key_type="ec")
        key = make_key("ec")
        write_cert(tmp / "sink.crt", issue_cert(ca, ca_key, key.public_key(), "sink", ip_addresses=[NODE],
                                                server=True))
        write_key(tmp / "sink.key", key)
        self.spawn([sys.executable, __file__, "--sink", str(self.port), str(self.tls_port), str(tmp / "sink.crt"),
                    str(tmp / "sink.key")])
        wait_port(NODE, self.port)
        self.sshd = NodeSSHD(tmp / "sshd", NODE, pick_ssh_port([NODE]), getpass.getuser()).prepare()
        self.keyfile = str(tmp / "apiserver-ssh")
        self.ssh = SSHTunnelDialer(SSHOptions(getpass.getuser(), self.keyfile, port=self.sshd.port))
        self.sshd.authorize(authorized_key(self.keyfile))
        self.sshd.start()
        self.fwd_port = free_port("127.0.0.1")
        self.fwd_tls_port = free_port("127.0.0.1")
        self.spawn(["ssh", "-N", "-i", self.keyfile, "-p", str(self.sshd.port), "-c", CIPHER, "-o", "BatchMode=yes",
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                    "-L", f"127.0.0.1:{self.fwd_port}:{NODE}:{self.port}",
                    "-L", f"127.0.0.1:{self.fwd_tls_port}:{NODE}:{self.tls_port}", f"{getpass.getuser()}@{NODE}"])
        wait_port("127.0.0.1", self.fwd_tls_port)
        pki = konnectivity_pki(tmp, ["node1"])
        agent_port = free_port("127.0.0.1")
        self.spawn(server_argv(pki, agent_port))
        wait_port("127.0.0.1", agent_port)
        self.spawn(agent_argv(pki, agent_port, "node1", NODE))
        self.agent = HTTPConnectDialer(Connection("HTTPConnect", uds_name=pki.socket))

    def spawn(self, argv: list[str]) -> None:
        self.procs.append(subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=open(self.tmp / f"proc{len(self.procs)}.log", "wb"),
                                           start_new_session=True))

    async def start(self) -> None:
        store = MemoryStore()
        await store.create("nodes", {"metadata": {"name": "node1", "namespace": ""}, "status": {
            "addresses": [{"type": "InternalIP", "address": NODE}]}})
        await self.ssh.start(store)
        async with asyncio.timeout(15):
            while not (self.ssh.tunnels.get("node1") and self.ssh.tunnels["node1"].state is State.UP):
                await asyncio.sleep(0.05)
            while True:  # the agent's tunnel is up once a CONNECT succeeds
                try:
                    (await self.agent.dial(NODE, self.port))[1].close()
                    break
                except DialError:
                    await asyncio.sleep(0.1)

    async def close(self) -> None:
        await self.ssh.stop()
        self.sshd.stop()
        for p in self.procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            p.wait(10)


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tunnels-bench-") as tmp:
        setup = Setup(Path(tmp))
        try:
            await setup.start()
            await measure(setup, args)
        finally:
            await setup.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(s: Setup, args: argparse.Namespace) -> None:
    direct = DirectDialer()
    forward = _Forward(s.fwd_port, s.fwd_tls_port, s.port, s.tls_port)
    modes: dict[str, Dialer] = {"direct": direct, "ssh": s.ssh, "openssh": forward, "agent": s.agent}
    # the processes each mode's bytes go through, besides this one (the sshd's session process is not
    # ours to find, so the SSH modes have no CPU figure)
    cpu_pids = {"direct": [s.procs[0].pid], "agent": [s.procs[0].pid, s.procs[2].pid, s.procs[3].pid]}
    size = args.mib * 1024 * 1024
    runs = {name: {"plain": [], "tls": [], "rtt": [], "cpu plain": [], "cpu tls": []} for name in modes}
    # Rounds: every mode once per round, so that a ratio compares figures taken seconds apart (other
    # processes on a shared machine change the load from minute to minute; a mode-after-mode order
    # would turn that into a bias for whichever mode ran in the quiet minute).
    for _ in range(args.runs):
        for name, dialer in modes.items():
            r = runs[name]
            for kind in ("plain", "tls"):
                pids = cpu_pids.get(name, [])
                before = time.process_time() + sum(cpu_seconds(p) for p in pids)
                r[kind].append(await upload(dialer, s.tls_port if kind == "tls" else s.port, kind == "tls", size))
                if pids:
                    used = time.process_time() + sum(cpu_seconds(p) for p in pids) - before
                    r[f"cpu {kind}"].append(used / (size / 1e6) * 1e3)
            r["rtt"].append(await round_trip(dialer, s.port, args.pings))
    med = {name: {k: statistics.median(v) if v else float("nan") for k, v in r.items()} for name, r in runs.items()}
    print(f"tunnels bench: {args.mib} MiB uploads, {args.pings} 1-byte echoes, median of {args.runs} rounds "
          f"(each round runs every mode); cipher {CIPHER}; node {NODE}")
    print(f"{'mode':<9}{'plain MB/s':>12}{'TLS MB/s':>11}{'RTT us':>9}   CPU ms/MB plain, TLS (all processes)")
    for name, r in med.items():
        cpu = f"{r['cpu plain']:.2f}, {r['cpu tls']:.2f}" if runs[name]["cpu plain"] else "-"
        print(f"{name:<9}{r['plain']:>12.0f}{r['tls']:>11.0f}{r['rtt']:>9.0f}   {cpu}")
    for a, b in (("ssh", "openssh"), ("agent", "direct")):
        for kind in ("plain", "tls"):
            ratio = statistics.median(x / y for x, y in zip(runs[a][kind], runs[b][kind], strict=True))
            print(f"{a}/{b} {kind:<5} throughput {ratio:.2f}  (median of the rounds' ratios; target >= 0.50: "
                  f"{'ok' if ratio >= 0.5 else 'MISS'})")
        print(f"{a}/{b} round trip  {med[a]['rtt'] / med[b]['rtt']:.2f}x")
    cores = len(os.sched_getaffinity(0))
    for kind in ("plain", "tls"):
        agent, direct = med["agent"][f"cpu {kind}"], med["direct"][f"cpu {kind}"]
        print(f"agent/direct {kind:<5} CPU per MB {agent / direct:.1f}x: with all {cores} cores on it the agent path "
              f"could move at most {cores * 1000 / agent:.0f} MB/s (its processes' CPU time, not this run's load)")


class _Forward:
    """``ssh -L``: the same node ports, reached on the local forward ports."""

    name = "openssh"

    def __init__(self, fwd: int, fwd_tls: int, port: int, tls_port: int) -> None:
        self.map = {port: fwd, tls_port: fwd_tls}

    async def dial(self, host: str, port: int) -> Streams:
        return await asyncio.open_connection("127.0.0.1", self.map[port], limit=1 << 20)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sink":
        port, tls_port, cert, key = sys.argv[2:6]
        asyncio.run(sink_main(int(port), int(tls_port), cert, key))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--pings", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    if sshd_binary() is None:
        sys.exit("bench/tunnels.py needs OpenSSH's sshd: apt-get install -y openssh-server")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()



