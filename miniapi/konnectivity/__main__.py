"""``python -m miniapi.konnectivity server|agent``: flags named like konnectivity-server's and -agent's.

    python -m miniapi.konnectivity server --mode http-connect --uds-name /run/konnectivity.sock \\
        --server-port 0 --agent-port 8132 --cluster-cert server.crt --cluster-key server.key \\
        --cluster-ca-cert ca.crt --proxy-strategies destHost,default
    python -m miniapi.konnectivity agent --proxy-server-host 127.0.0.1 --proxy-server-port 8132 \\
        --ca-cert ca.crt --agent-cert agent.crt --agent-key agent.key \\
        --agent-identifiers 'host=node1&ipv4=127.0.0.2'
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from miniapi.flags import parse_csv
from miniapi.konnectivity.agent import AgentOptions, ProxyAgent
from miniapi.konnectivity.server import ProxyServer, ServerOptions

STRATEGIES = ("default", "destHost", "defaultRoute")


def _server_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("server", help="the proxy server (control plane)")
    a = p.add_argument
    a("--mode", default="grpc", help="grpc or http-connect (the frontend protocol; only http-connect here)")
    a("--uds-name", default="", help="Unix socket for the frontend (then --server-port must be 0)")
    a("--delete-existing-uds-file", action="store_true", help="remove a stale --uds-name file first")
    a("--server-port", type=int, default=8090, help="TCP port of the mTLS frontend (0 with --uds-name)")
    a("--server-bind-address", default="", help="address of the TCP frontend")
    a("--server-cert", default="", help="frontend serving certificate")
    a("--server-key", default="", help="frontend serving key")
    a("--server-ca-cert", default="", help="CA that signs frontend clients (the apiserver's tlsConfig.clientCert)")
    a("--agent-port", type=int, default=8091, help="port the agents connect to (the docs use 8132)")
    a("--agent-bind-address", default="", help="address of the agent port")
    a("--cluster-cert", default="", help="certificate presented to agents")
    a("--cluster-key", default="", help="key of --cluster-cert")
    a("--cluster-ca-cert", default="", help="CA that signs agent client certificates (mTLS agents)")
    a("--admin-port", type=int, default=8095, help="plain-HTTP /metrics (0: off)")
    a("--admin-bind-address", default="127.0.0.1")
    a("--health-port", type=int, default=8092, help="plain-HTTP /healthz and /readyz (0: off)")
    a("--health-bind-address", default="")
    a("--proxy-strategies", type=parse_csv, default=["default"],
      help="agent choice, in order: destHost, defaultRoute, default (real default: default)")
    a("--agent-namespace", default="", help="namespace of the agents' service account (token auth)")
    a("--agent-service-account", default="", help="the agents' service account (token auth)")
    a("--authentication-audience", default="",
      help="enables token auth: audience the agents' tokens must have (system:konnectivity-server)")
    a("--kubeconfig", default="", help="kubeconfig for TokenReviews (token auth)")
    a("--keepalive-time", type=float, default=30.0, help="seconds between keepalive pings to agents")
    a("--server-id", default="", help="this server's id (default: a random UUID)")
    a("-v", "--v", type=int, default=1, help="log verbosity")


def _agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="the node agent (dials out to the server)")
    a = p.add_argument
    a("--proxy-server-host", default="127.0.0.1")
    a("--proxy-server-port", type=int, default=8091)
    a("--ca-cert", default="", help="CA that signs the server's --cluster-cert")
    a("--agent-cert", default="", help="client certificate (mTLS)")
    a("--agent-key", default="", help="key of --agent-cert")
    a("--service-account-token-path", default="", help="token of audience system:konnectivity-server")
    a("--agent-identifiers", default="", help="URL-encoded, e.g. host=node1&ipv4=127.0.0.2&cidr=127.244.1.0/24")
    a("--agent-id", default="", help="this agent's id (default: a random UUID)")
    a("--sync-interval", type=float, default=1.0, help="first reconnect delay (s)")
    a("--sync-interval-cap", type=float, default=10.0, help="longest reconnect delay (s)")
    a("--keepalive-time", type=float, default=30.0)
    a("-v", "--v", type=int, default=1, help="log verbosity")


def server_options(ns: argparse.Namespace) -> ServerOptions:
    if ns.mode != "http-connect":
        raise SystemExit(f"--mode {ns.mode}: only http-connect is implemented (the apiserver's egress selector "
                         "then uses proxyProtocol: HTTPConnect)")
    if bool(ns.uds_name) == bool(ns.server_port):
        raise SystemExit("exactly one frontend: --uds-name with --server-port=0, or --server-port with TLS")
    if ns.server_port and not (ns.server_cert and ns.server_key):
        raise SystemExit("--server-port needs --server-cert and --server-key (and --server-ca-cert for mTLS)")
    if not (ns.cluster_cert and ns.cluster_key):
        raise SystemExit("--cluster-cert and --cluster-key are required (the agents' TLS)")
    if ns.authentication_audience and not (ns.kubeconfig and ns.agent_namespace and ns.agent_service_account):
        raise SystemExit("--authentication-audience needs --kubeconfig, --agent-namespace, --agent-service-account")
    if not ns.authentication_audience and not ns.cluster_ca_cert:
        raise SystemExit("agents must authenticate: --cluster-ca-cert (mTLS) or --authentication-audience (tokens)")
    bad = [s for s in ns.proxy_strategies if s not in STRATEGIES]
    if bad or not ns.proxy_strategies:
        raise SystemExit(f"--proxy-strategies: unknown {bad}; choose from {', '.join(STRATEGIES)}")
    fields = {k: v for k, v in vars(ns).items() if k in ServerOptions.__dataclass_fields__ and v != ""}
    fields["proxy_strategies"] = tuple(ns.proxy_strategies)
    return ServerOptions(**fields)


def agent_options(ns: argparse.Namespace) -> AgentOptions:
    if bool(ns.agent_cert) != bool(ns.agent_key):
        raise SystemExit("--agent-cert and --agent-key go together")
    if not ns.agent_cert and not ns.service_account_token_path:
        raise SystemExit("the agent must authenticate: --agent-cert/--agent-key or --service-account-token-path")
    fields = {k: v for k, v in vars(ns).items() if k in AgentOptions.__dataclass_fields__ and v != ""}
    return AgentOptions(**fields)


async def _until_signal(main: asyncio.Future[None] | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, *([main] if main else [])], return_when=asyncio.FIRST_COMPLETED)
    if main is not None:
        main.cancel()


async def _serve(options: ServerOptions) -> None:
    async with ProxyServer(options):
        print("konnectivity-server: ready", flush=True)
        await _until_signal()


async def _agent(options: AgentOptions) -> None:
    agent = ProxyAgent(options)
    await _until_signal(asyncio.ensure_future(agent.run()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m miniapi.konnectivity")
    sub = parser.add_subparsers(dest="command", required=True)
    _server_parser(sub)
    _agent_parser(sub)
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if ns.v >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s] %(message)s", stream=sys.stderr)
    if ns.command == "server":
        asyncio.run(_serve(server_options(ns)))
    else:
        asyncio.run(_agent(agent_options(ns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
