"""The proxy server (``python -m miniapi.konnectivity server``): the control-plane end of the agent tunnels.

Four listeners, named by the real konnectivity-server's flags:

1. **frontend** (``--uds-name`` or ``--server-port`` with mutual TLS: ``--server-cert/--server-key``, clients
   verified against ``--server-ca-cert``): the apiserver's HTTP CONNECT requests (:mod:`miniapi.proxy.egress`);
2. **agents** (``--agent-port``, TLS with ``--cluster-cert/--cluster-key``): agents dial *in* and keep one
   tunnel each (:mod:`.tunnel`). They authenticate with a client certificate signed by
   ``--cluster-ca-cert`` (mTLS), or, with ``--authentication-audience``, with a service-account token
   that a TokenReview (``--kubeconfig``) finds valid for that audience and names
   ``system:serviceaccount:<--agent-namespace>:<--agent-service-account>``;
3. **health** (``--health-port``, plain HTTP): ``/healthz``; ``/readyz`` is ready once an agent is connected;
4. **admin** (``--admin-port``, plain HTTP): ``/metrics`` (agents, open connections).

A CONNECT picks an agent by ``--proxy-strategies`` (tried in order; real default ``default``):
``destHost`` - an agent whose identifiers name the host (``host=``, ``ipv4=``, ``ipv6=``) or, ours,
hold it in a ``cidr=`` (pod IPs); ``defaultRoute`` - an agent with ``default-route=true``; ``default``
- any agent, at random.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import secrets
import ssl
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from miniapi.konnectivity.auth import Authenticator
from miniapi.konnectivity.codec import CloseReq, DialCls, DialReq, DialRsp, Hello, Packet, Welcome
from miniapi.konnectivity.httpd import serve_health
from miniapi.konnectivity.tunnel import Tunnel
from miniapi.proxy.egress import uds_send_buffer

log = logging.getLogger("miniapi.konnectivity.server")

DIAL_TIMEOUT = 30.0
HELLO_TIMEOUT = 10.0
MAX_HEAD = 16 * 1024


@dataclass(frozen=True)
class ServerOptions:
    mode: str = "grpc"
    uds_name: str = ""
    delete_existing_uds_file: bool = False
    server_port: int = 8090
    server_bind_address: str = ""
    server_cert: str = ""
    server_key: str = ""
    server_ca_cert: str = ""
    agent_port: int = 8091
    agent_bind_address: str = ""
    cluster_cert: str = ""
    cluster_key: str = ""
    cluster_ca_cert: str = ""
    admin_port: int = 8095
    admin_bind_address: str = "127.0.0.1"
    health_port: int = 8092
    health_bind_address: str = ""
    proxy_strategies: tuple[str, ...] = ("default",)
    agent_namespace: str = ""
    agent_service_account: str = ""
    authentication_audience: str = ""
    kubeconfig: str = ""
    keepalive_time: float = 30.0
    server_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class PendingDial:
    """A CONNECT waiting for its DIAL_RSP; on success the relay is attached as the DIAL_RSP is read, so
    no DATA that follows it in the same read can miss its connection."""

    future: asyncio.Future[DialRsp]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class Agent:
    id: str
    identifiers: dict[str, list[str]]
    tunnel: Tunnel
    pending: dict[int, PendingDial] = field(default_factory=dict)

    def names(self, host: str) -> bool:
        return any(host in self.identifiers.get(k, ()) for k in ("host", "ipv4", "ipv6"))

    def holds(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
            return any(ip in ipaddress.ip_network(c, strict=False) for c in self.identifiers.get("cidr", ()))
        except ValueError:
            return False

    @property
    def default_route(self) -> bool:
        return "true" in self.identifiers.get("default-route", ())


class ProxyServer:
    """``async with ProxyServer(options)``: all listeners up; ``agents`` are the connected tunnels."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.agents: dict[str, Agent] = {}
        self.auth = Authenticator(options)
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.frontend_port = self.agent_port = 0
        self.connections = 0

    async def __aenter__(self) -> ProxyServer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        o = self.options
        if o.uds_name:
            if o.delete_existing_uds_file and os.path.exists(o.uds_name):
                os.remove(o.uds_name)
            self._servers.append(await asyncio.start_unix_server(self._frontend, o.uds_name, limit=1 << 20))
            os.chmod(o.uds_name, 0o600)
        else:
            server = await asyncio.start_server(self._frontend, o.server_bind_address or None, o.server_port,
                                                ssl=_server_tls(o.server_cert, o.server_key, o.server_ca_cert),
                                                limit=1 << 20)
            self._servers.append(server)
            self.frontend_port = server.sockets[0].getsockname()[1]
        agents = await asyncio.get_running_loop().create_server(
            lambda: Tunnel(on_connect=self._agent_connected), o.agent_bind_address or None, o.agent_port,
            ssl=_server_tls(o.cluster_cert, o.cluster_key, o.cluster_ca_cert, require=not self.auth.token_mode))
        self._servers.append(agents)
        self.agent_port = agents.sockets[0].getsockname()[1]
        for port, host, app in ((o.health_port, o.health_bind_address, "health"),
                                (o.admin_port, o.admin_bind_address, "admin")):
            if port:
                self._servers.append(await serve_health(self, host, port, app))
        log.info("konnectivity server %s: frontend %s, agents on port %d (auth %s), strategies %s", o.server_id,
                 o.uds_name or f"mTLS port {self.frontend_port}", self.agent_port,
                 "token" if self.auth.token_mode else "mTLS", ",".join(o.proxy_strategies))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for agent in list(self.agents.values()):
            await agent.tunnel.close()
        for task in list(self._tasks):
            task.cancel()
        await self.auth.close()
        self._servers.clear()

    # -- agents ---------------------------------------------------------------------------------------
    def _agent_connected(self, tunnel: Tunnel) -> None:
        task = asyncio.create_task(self._agent(tunnel), name=tunnel.name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _agent(self, tunnel: Tunnel) -> None:
        peer = tunnel.transport.get_extra_info("peername") if tunnel.transport is not None else None
        try:
            hello = await tunnel.first(HELLO_TIMEOUT)
            if not isinstance(hello, Hello) or isinstance(hello, Welcome):
                raise PermissionError(f"expected HELLO, got {type(hello).__name__}")
            await self.auth.authenticate(hello, tunnel.transport)
        except Exception as exc:  # refused: say why, then hang up
            log.warning("agent refused peer=%s: %s", peer, exc)
            with contextlib.suppress(Exception):
                tunnel.send(Welcome((("error", str(exc)),)))
            await tunnel.close()
            return
        agent = Agent(hello.get("agentid") or str(uuid.uuid4()), _identifiers(hello.get("agentidentifiers")), tunnel)
        old = self.agents.get(agent.id)
        if old is not None:
            await old.tunnel.close()
        self.agents[agent.id] = agent
        log.info("agent connected id=%s identifiers=%s peer=%s", agent.id, hello.get("agentidentifiers"), peer)
        try:
            tunnel.send(Welcome((("serverid", self.options.server_id), ("servercount", "1"))))
            await tunnel.run(lambda p: self._from_agent(agent, p), self.options.keepalive_time)
        except Exception as exc:
            log.warning("agent tunnel failed id=%s: %s", agent.id, exc)
        finally:
            if self.agents.get(agent.id) is agent:
                del self.agents[agent.id]
            for dial in agent.pending.values():
                if not dial.future.done():
                    dial.future.set_exception(ConnectionError("agent disconnected"))
            log.info("agent disconnected id=%s", agent.id)

    def _from_agent(self, agent: Agent, packet: Packet) -> None:
        if isinstance(packet, DialRsp):
            dial = agent.pending.pop(packet.random, None)
            if dial is not None and not dial.future.done() and (dial.writer.transport.is_closing()
                                                                 or dial.reader.at_eof()):
                dial.future.set_exception(ConnectionError("the client hung up while the agent dialled"))
                dial = None
            if dial is not None and not dial.future.done():
                if not packet.error:
                    dial.writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    agent.tunnel.attach(packet.connect_id, dial.writer.transport, _unread(dial.reader), dial.writer)
                dial.future.set_result(packet)
            elif not packet.error:  # nobody waits any more (timed out): hang up
                with contextlib.suppress(ConnectionError):
                    agent.tunnel.send(CloseReq(packet.connect_id))
        else:
            log.warning("unexpected %s from agent %s", type(packet).__name__, agent.id)

    def pick(self, host: str) -> Agent | None:
        agents = list(self.agents.values())
        for strategy in self.options.proxy_strategies:
            if strategy == "destHost":
                fits = [a for a in agents if a.names(host)] or [a for a in agents if a.holds(host)]
            elif strategy == "defaultRoute":
                fits = [a for a in agents if a.default_route]
            else:
                fits = agents
            if fits:
                return random.choice(fits)
        return None

    # -- frontend -------------------------------------------------------------------------------------
    async def _frontend(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.options.uds_name:
            uds_send_buffer(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HELLO_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.transport.abort()
            return
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        address = rest.partition(" ")[0]
        if method != "CONNECT":
            return await _reply(writer, 405, "Method Not Allowed", "this proxy only supports CONNECT passthrough")
        host = address.rpartition(":")[0].strip("[]")
        agent = self.pick(host)
        if agent is None:
            log.warning("no agent for %s", address)
            return await _reply(writer, 500, "Internal Server Error",
                                "currently no tunnels available: No agent available")
        random_id = secrets.randbits(63)
        fut: asyncio.Future[DialRsp] = asyncio.get_running_loop().create_future()
        agent.pending[random_id] = PendingDial(fut, reader, writer)
        try:
            agent.tunnel.send(DialReq(random_id, address))
            rsp = await asyncio.wait_for(fut, DIAL_TIMEOUT)
        except TimeoutError:
            agent.pending.pop(random_id, None)
            with contextlib.suppress(ConnectionError):
                agent.tunnel.send(DialCls(random_id))
            return await _reply(writer, 504, "Gateway Timeout", f"dial {address} through agent {agent.id} timed out")
        except ConnectionError as exc:
            agent.pending.pop(random_id, None)
            return await _reply(writer, 502, "Bad Gateway", f"agent {agent.id}: {exc}")
        if rsp.error:
            log.info("dial failed address=%s agent=%s: %s", address, agent.id, rsp.error)
            return await _reply(writer, 502, "Bad Gateway", rsp.error)
        self.connections += 1  # _from_agent answered 200 and attached the relay
        log.info("tunnel open address=%s agent=%s connect_id=%d", address, agent.id, rsp.connect_id)


async def _reply(writer: asyncio.StreamWriter, code: int, reason: str, text: str) -> None:
    body = text.encode() + b"\n"
    writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
                 f"{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(Exception):
        await writer.drain()
    writer.close()


def _unread(reader: asyncio.StreamReader) -> bytes:
    """What the client sent after its CONNECT head (usually nothing: it waits for the 200)."""
    buffered: bytearray = getattr(reader, "_buffer", bytearray())
    data = bytes(buffered)
    buffered.clear()
    return data


def _identifiers(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        out.setdefault(key, []).append(value)
    return out


def _server_tls(cert: str, key: str, ca: str, *, require: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(cafile=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_OPTIONAL
    return ctx
