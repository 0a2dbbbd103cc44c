"""The agent (``python -m miniapi.konnectivity agent``): the node end of the tunnel. It dials OUT.

1. Connect to ``--proxy-server-host:--proxy-server-port`` over TLS, verifying the server against
   ``--ca-cert``; present ``--agent-cert/--agent-key`` (mTLS), or send the token read from
   ``--service-account-token-path`` (re-read on every connect: the kubelet rotates projected tokens).
2. HELLO with ``agentid`` (``--agent-id``), ``agentidentifiers`` (``--agent-identifiers``, e.g.
   ``host=node1&ipv4=127.0.0.2&cidr=127.244.1.0/24``) and the token; the server answers WELCOME.
3. For each DIAL_REQ, open a TCP connection to the address *from the node* and relay it; DIAL_RSP
   carries the connect_id or the dial error (``dial tcp 127.0.0.2:10250: connect: connection refused``).
4. When the tunnel breaks, reconnect after ``--sync-interval``, doubling up to ``--sync-interval-cap``.

The node needs no inbound port for any of this: every byte from the control plane arrives on the
connection the agent opened.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import ssl
import uuid
from dataclasses import dataclass, field

from miniapi.konnectivity.codec import DialCls, DialReq, DialRsp, Hello, Packet, Welcome
from miniapi.konnectivity.tunnel import Relay, Tunnel
from miniapi.proxy.address import join_host_port
from miniapi.proxy.dialer import errno_text

log = logging.getLogger("miniapi.konnectivity.agent")

DIAL_TIMEOUT = 10.0


@dataclass(frozen=True)
class AgentOptions:
    proxy_server_host: str = "127.0.0.1"
    proxy_server_port: int = 8091
    ca_cert: str = ""
    agent_cert: str = ""
    agent_key: str = ""
    service_account_token_path: str = ""
    agent_identifiers: str = ""
    agent_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    sync_interval: float = 1.0
    sync_interval_cap: float = 10.0
    keepalive_time: float = 30.0


class ProxyAgent:
    """``await agent.run()`` keeps one tunnel to the server until cancelled; ``connected`` is set while up."""

    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.connected = asyncio.Event()
        self.tunnel: Tunnel | None = None
        self._ids = itertools.count(1)
        self._dials: dict[int, asyncio.Task[None]] = {}
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if options.ca_cert:
            ctx.load_verify_locations(cafile=options.ca_cert)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if options.agent_cert:
            ctx.load_cert_chain(options.agent_cert, options.agent_key)
        self._ssl = ctx

    def _hello(self) -> Hello:
        meta = [("agentid", self.options.agent_id), ("agentidentifiers", self.options.agent_identifiers)]
        if self.options.service_account_token_path:
            with open(self.options.service_account_token_path) as f:
                meta.append(("authorization", f"Bearer {f.read().strip()}"))
        return Hello(tuple(meta))

    async def run(self) -> None:
        o = self.options
        delay = o.sync_interval
        while True:
            try:
                await self._session()
                delay = o.sync_interval
            except (OSError, ssl.SSLError, ConnectionError, TimeoutError, PermissionError, ValueError) as exc:
                log.warning("cannot connect to proxy server %s: %s; retry in %.1fs",
                            join_host_port(o.proxy_server_host, o.proxy_server_port), exc, delay)
            finally:
                self.connected.clear()
                self.tunnel = None
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, o.sync_interval_cap)

    async def _session(self) -> None:
        o = self.options
        tunnel = Tunnel(f"server@{join_host_port(o.proxy_server_host, o.proxy_server_port)}")
        await asyncio.wait_for(asyncio.get_running_loop().create_connection(
            lambda: tunnel, o.proxy_server_host, o.proxy_server_port, ssl=self._ssl), 10)
        try:
            tunnel.send(self._hello())
            welcome = await tunnel.first(10)
            if not isinstance(welcome, Welcome):
                raise ConnectionError(f"expected WELCOME, got {type(welcome).__name__}")
            if welcome.get("error"):
                raise PermissionError(f"the proxy server refused this agent: {welcome.get('error')}")
        except BaseException:
            await tunnel.close()
            raise
        self.tunnel = tunnel
        self.connected.set()
        log.info("connected to proxy server id=%s agent=%s identifiers=%s", welcome.get("serverid"), o.agent_id,
                 o.agent_identifiers)
        await tunnel.run(lambda p: self._handle(tunnel, p), o.keepalive_time)
        log.warning("tunnel to proxy server closed")

    def _handle(self, tunnel: Tunnel, packet: Packet) -> None:
        if isinstance(packet, DialReq):
            task = asyncio.create_task(self._dial(tunnel, packet))
            self._dials[packet.random] = task
            task.add_done_callback(lambda _: self._forget(packet.random))
        elif isinstance(packet, DialCls):
            if packet.random in self._dials:
                self._dials.pop(packet.random).cancel()
        else:
            log.warning("unexpected %s from the proxy server", type(packet).__name__)

    def _forget(self, random_id: int) -> None:
        self._dials.pop(random_id, None)

    async def _dial(self, tunnel: Tunnel, req: DialReq) -> None:
        try:
            await self._dial_and_answer(tunnel, req)
        except ConnectionError:  # the tunnel broke meanwhile; its close() dropped the relay
            log.info("tunnel closed before the dial of %s was answered", req.address)

    async def _dial_and_answer(self, tunnel: Tunnel, req: DialReq) -> None:
        host, _, port = req.address.rpartition(":")
        host = host.strip("[]")
        connect_id = next(self._ids)
        relay = Relay(tunnel, connect_id, paused=True)  # nothing is relayed before the DIAL_RSP
        try:
            async with asyncio.timeout(DIAL_TIMEOUT):
                await asyncio.get_running_loop().create_connection(lambda: relay, host, int(port))
        except TimeoutError:
            tunnel.send(DialRsp(req.random, 0, f"dial tcp {req.address}: i/o timeout"))
            return
        except (OSError, ValueError) as exc:
            text = errno_text(exc) if isinstance(exc, OSError) else str(exc)
            log.info("dial failed address=%s: %s", req.address, text)
            tunnel.send(DialRsp(req.random, 0, f"dial tcp {req.address}: connect: {text}"))
            return
        log.info("dialled address=%s connect_id=%d", req.address, connect_id)
        try:
            tunnel.send(DialRsp(req.random, connect_id))
        except ConnectionError:
            relay.close()
            raise
        relay.start()
