"""The iptables mode's I/O: apply the rendered nat table, hook it into OUTPUT/PREROUTING, clean up.

1. :meth:`IptablesBackend.available` - ``iptables -t nat -S <prefix>-SERVICES`` (or the table) answers:
   the binary exists and we may change netfilter (root, CAP_NET_ADMIN).
2. :meth:`~IptablesBackend.sync` - ``iptables-restore --noflush`` with :func:`~.rules.render_iptables`'s
   text: every chain it names is flushed and refilled in one transaction, the rest of the table (docker's
   chains, say) is left alone; the jumps ``-A OUTPUT|PREROUTING -j KUBE-SERVICES`` are added once
   (``-C`` first); chains of services that went away are flushed and deleted.
3. :meth:`~IptablesBackend.cleanup` (``--cleanup``, and on exit) - the jumps and every chain of ours go.

``OUTPUT`` catches connections made on this host (the local cluster's pods are host processes);
``PREROUTING`` those arriving from elsewhere (a container network). DNAT to a loopback endpoint from
``PREROUTING`` would also need ``net.ipv4.conf.all.route_localnet=1``, which we do not set: in the
local cluster all traffic is local.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from minikubeproxy.rules import JUMPS, ServicePort, render_iptables, stale_chains

log = logging.getLogger("minikubeproxy.iptables")


class IptablesError(RuntimeError):
    pass


async def run(*argv: str, stdin: bytes | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise IptablesError(f"{' '.join(argv)}: exit {proc.returncode}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


class IptablesBackend:
    name = "iptables"

    def __init__(self, prefix: str = "KUBE", iptables: str = "iptables") -> None:
        if not (prefix.isalnum() and 0 < len(prefix) <= 4):
            raise ValueError(f"chain prefix {prefix!r}: 1-4 letters or digits (KUBE-SVC-<16 characters> is "
                             "already 25 of iptables' 28)")
        self.prefix, self.iptables = prefix, iptables
        self.restore = iptables + "-restore"

    @property
    def services_chain(self) -> str:
        return f"{self.prefix}-SERVICES"

    async def available(self) -> str | None:
        """None if usable, else why not (rule 1)."""
        try:
            await run(self.iptables, "-w", "-t", "nat", "-S", "OUTPUT")
        except FileNotFoundError:
            return f"{self.iptables} is not installed"
        except (IptablesError, OSError) as exc:
            return str(exc)
        return None

    async def _chains(self) -> list[str]:
        text = await run(self.iptables, "-w", "-t", "nat", "-S")
        return [line.split()[1] for line in text.splitlines() if line.startswith("-N ")]

    async def sync(self, ports: Sequence[ServicePort]) -> None:
        """Rule 2."""
        text = render_iptables(ports, self.prefix)
        existing = await self._chains()
        await run(self.restore, "-w", "--noflush", stdin=text.encode())
        for chain, comment in JUMPS:
            spec = ("-t", "nat", "{}", chain, "-m", "comment", "--comment", comment, "-j", self.services_chain)
            try:
                await run(self.iptables, "-w", *(a.replace("{}", "-C") for a in spec))
            except IptablesError:
                await run(self.iptables, "-w", *(a.replace("{}", "-I") for a in spec))
        await self._delete(stale_chains(existing, text, self.prefix))
        log.info("iptables synced services=%d rules-chains=%d", sum(1 for p in ports if p.endpoints),
                 text.count("\n:"))

    async def _delete(self, chains: Sequence[str]) -> None:
        if not chains:
            return
        lines = ["*nat", *(f":{c} - [0:0]" for c in chains), *(f"-X {c}" for c in chains), "COMMIT", ""]
        await run(self.restore, "-w", "--noflush", stdin="\n".join(lines).encode())

    async def cleanup(self) -> None:
        """Rule 3: remove the jumps and every chain with our prefix (errors logged, not raised)."""
        for chain, comment in JUMPS:
            try:
                while True:
                    await run(self.iptables, "-w", "-t", "nat", "-D", chain, "-m", "comment", "--comment", comment,
                              "-j", self.services_chain)
            except (IptablesError, OSError):
                pass
        try:
            ours = [c for c in await self._chains() if c.startswith(f"{self.prefix}-")]
            await self._delete(ours)
        except (IptablesError, OSError) as exc:
            log.warning("iptables cleanup incomplete: %s", exc)
            return
        log.info("iptables rules removed chains=%d", len(ours))
