"""Scenario 4: the apiserver proxy to pods, services and nodes, read and altered on the wire.

The source page: "Die Verbindungen vom Apiserver zu einem Node, Pod oder Dienst verwenden
standardmäßig einfache HTTP-Verbindungen und werden daher weder authentifiziert noch verschlüsselt."
and, for the ``https:`` prefix: "Das vom HTTPS-Endpunkt bereitgestellte Zertifikat wird jedoch nicht
überprüft, und es werden keine Clientanmeldeinformationen bereitgestellt. Die Verbindung wird zwar
verschlüsselt, garantiert jedoch keine Integrität."

``kubectl get --raw /api/v1/namespaces/default/pods/NAME:8080/proxy/invoices/4711`` goes client -> apiserver
(verified TLS) -> pod IP 10.244.1.x (the apiserver's own connection, across the router where the
attacker sits; lab/topology.py routes pod CIDRs). The pod serves a payment page; the attacker reads
it and rewrites "to account alice" into "to account mallory" (lab/attacker/addon.py ``Tamper``).

Outcomes (the same in both profiles for pods and services: no flag changes this path):

1. ``pods/NAME:8080/proxy/`` (plain HTTP): the learner gets the altered page; the attacker logged the
   request path and the original page.
2. ``pods/https:NAME:8443/proxy/``: encrypted, but the apiserver verifies nothing and sends no client
   certificate, so mitmproxy's forged certificate is accepted: altered just the same.
3. ``services/NAME:http/proxy/``: the service proxy picks a pod IP, then as 1.
4. ``nodes/NODE/proxy/healthz``: the one proxied path with a fix - it is the kubelet connection, so
   ``--kubelet-certificate-authority`` (``apiserver-kubelet-ca=hardened``) refuses mitmproxy (x509);
   without it the attacker reads it too.
"""

from __future__ import annotations

import json
import secrets
import time

from lab.attacker import decode, loot
from lab.scenarios.base import Context
from minilab.profiles import Level

NAME = "apiserver-proxy"
SUMMARY = "apiserver proxy to pods/services over HTTP (and https:) read and altered on the wire; nodes/proxy verified"
PATHS = ("apiserver-kubelet-ca",)
X509_UNKNOWN = "x509: certificate signed by unknown authority"
ORIGINAL, FORGED = decode.TAMPER_FROM.decode(), decode.TAMPER_TO.decode()
PAGE = "/invoices/4711"  # the path behind .../proxy: the attacker reads it too

# The pod's program: one page on its pod IP, plain HTTP on 8080 and HTTPS (self-signed) on 8443.
APP = """\
import http.server, os, socketserver, ssl, threading
page = "payment service: please transfer 100 EUR %s\\nsession=%s\\n" % (os.environ["PAYEE"], os.environ["SESSION"])
page = page.encode()
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)
        print("served", self.path, "to", self.client_address[0], flush=True)
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):  # without HTTPServer's reverse DNS lookup of the pod IP: the lab has no DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "payments", self.server_address[1]
tls = Server((os.environ["POD_IP"], 8443), Page)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("tls.crt", "tls.key")
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
Server((os.environ["POD_IP"], 8080), Page).serve_forever()
"""
START = ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out tls.crt "
         "-subj /CN=payments -days 2 2>/dev/null && exec python3 -c \"$APP\"")


def pod_manifest(name: str, node: str, session: str) -> dict[str, object]:
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "PAYEE", "value": ORIGINAL}, {"name": "SESSION", "value": session}, {"name": "APP", "value": APP}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"lab.scenario": NAME, "lab.pod": name}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "web", "image": "python", "command": ["/bin/sh", "-c", START],
                                     "env": env, "ports": [{"name": "http", "containerPort": 8080},
                                                           {"name": "https", "containerPort": 8443}]}]}}


def service_manifest(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"lab.scenario": NAME}},
            "spec": {"selector": {"lab.pod": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def run(ctx: Context) -> None:
    r = ctx.report
    ctx.need_attacker()
    node = ctx.top.nodes[0]
    session = secrets.token_hex(6)
    pod = f"payments-{session[:6]}"
    r.step(f"Create a pod on {node.name} serving a payment page (HTTP :8080, HTTPS :8443), and a service for it")
    ctx.kubectl("apply", "-f", "-", stdin=json.dumps(service_manifest(pod)))
    try:
        with ctx.pod(pod_manifest(pod, node.name, session), ready=True) as started:
            if not started:
                return
            got = ctx.kubectl("get", "pod", pod, "-o", "jsonpath={.status.podIP}", show=False)
            ip = got.stdout.strip()
            r.check(decode.in_network(ip, ctx.top.pod_cidr(node.name)), f"its IP {ip} is in {node.name}'s pod "
                    f"CIDR {ctx.top.pod_cidr(node.name)}, routed via the router", f"pod IP {ip!r}")
            _checks(ctx, pod, ip, session, node.name)
    finally:
        ctx.kubectl("delete", "service", pod, "--wait=false", show=False)


def _raw(ctx: Context, path: str, want: str, tries: int = 20) -> tuple[int, str]:
    """``kubectl get --raw PATH``, retried (not shown) while the pod/endpoints are still starting."""
    got = ctx.kubectl("get", "--raw", path)
    for _ in range(tries):
        if got.returncode == 0 and want in got.stdout or X509_UNKNOWN in got.stderr:
            break
        time.sleep(0.5)
        got = ctx.kubectl("get", "--raw", path, show=False)
    return got.returncode, got.stdout + got.stderr


def _checks(ctx: Context, pod: str, ip: str, session: str, node: str) -> None:
    r = ctx.report
    since = time.time()
    r.step("For comparison, the page as the pod sends it (the client's own connection: the attacker leaves it alone)")
    direct = ctx.run(["curl", "-sS", "--max-time", "10", "--retry", "20", "--retry-connrefused", "--retry-delay", "1",
                      f"http://{ip}:8080{PAGE}"], display=["curl", "-sS", f"http://{ip}:8080{PAGE}"])
    r.check(ORIGINAL in direct.stdout, f"the pod says '{ORIGINAL}'", f"curl got {direct.stdout!r}")

    base = "/api/v1/namespaces/default"
    proxied = [("plain HTTP through the apiserver's pod proxy", f"{base}/pods/{pod}:8080/proxy{PAGE}"),
               ("https: prefix: encrypted, never verified", f"{base}/pods/https:{pod}:8443/proxy{PAGE}"),
               ("the service proxy (picks the pod's IP)", f"{base}/services/{pod}:http/proxy{PAGE}")]
    for what, path in proxied:
        r.step(f"{what}: kubectl get --raw")
        code, out = _raw(ctx, path, "payment service")
        r.check(code == 0 and FORGED in out and session in out, f"the page arrives ALTERED: '{FORGED}' (nothing "
                "tells the learner)", f"exit {code}: {out.strip()[:200]!r}")

    r.step(f"The node proxy: kubectl get --raw /api/v1/nodes/{node}/proxy/healthz (the kubelet connection)")
    code, out = _raw(ctx, f"/api/v1/nodes/{node}/proxy/healthz", "ok", tries=4)
    verifies = ctx.level("apiserver-kubelet-ca") is Level.HARDENED
    if verifies:
        r.check(code != 0 and X509_UNKNOWN in out, f"refused: '{X509_UNKNOWN}' (--kubelet-certificate-authority)",
                f"exit {code}: {out.strip()[:200]!r}")
    else:
        r.check(code == 0 and out.strip() == "ok", "ok (through the attacker, unverified)", f"exit {code}: {out!r}")
    _loot(ctx, pod, ip, session, node, since, verifies)


def _loot(ctx: Context, pod: str, ip: str, session: str, node: str, since: float, verifies: bool) -> None:
    r = ctx.report
    apiserver = ctx.top.apiserver_ip

    def altered(events: list[loot.Event]) -> list[loot.Event]:
        return [e for e in events if e.get("kind") == "altered" and e.get("client") == apiserver]

    events = loot.wait_for(lambda ev: len(altered(ev)) >= 3, ctx.loot_file, since)
    r.step("What the attacker saw and did (also in `docker compose logs attacker`)")
    for e in events:
        if e.get("kind") in ("request", "altered", "tls-handshake", "tls-dropped", "tls-refused", "pod-response"):
            detail = e.get("change") or e.get("path") or e.get("what") or ""
            r.say(f"{e.get('kind')}: {e.get('client', '')} -> {e.get('server', '')} {detail}", "      ")
            for line in (e.get("lines") or [])[:3]:
                r.say(f"| {line}", "        ")
    to_pod = [e for e in events if e.get("kind") == "request" and str(e.get("server", "")).startswith(f"{ip}:")]
    r.check({"8080", "8443"} <= {str(e.get("server")).rpartition(":")[2] for e in to_pod}
            and all(e.get("client") == apiserver and e.get("path") == PAGE for e in to_pod),
            f"the attacker read the apiserver's requests to {ip}:8080 and :8443, path {PAGE} included",
            f"requests to the pod in the loot: {[(e.get('server'), e.get('path')) for e in to_pod]}")
    r.check(any(session in line for line in decode.lines_with(events, session)),
            "the attacker read the page, session id included", "no page with the session id in the loot")
    r.check(len(altered(events)) >= 3, "the attacker altered all three answers (pod HTTP, pod https:, service)",
            f"{len(altered(events))} altered answer(s) in the loot")
    node_ip = ctx.top.node(node).ip
    read_node = [e for e in events if e.get("kind") == "request" and e.get("path") == "/healthz"
                 and str(e.get("server", "")).startswith(f"{node_ip}:")]
    if verifies:
        r.check(not read_node, "the node proxy request was not readable", f"the attacker read {read_node}")
    else:
        r.check(bool(read_node), "the attacker read the node proxy request too", "no /healthz request in the loot")
    r.notice("The pod and service proxy carry no authentication and, without the https: prefix, no encryption; "
             "with it, the apiserver still accepts any certificate (InsecureSkipVerify) and sends none of its own. "
             "So whoever is on the path reads AND changes the answer: the learner saw 'mallory' where the pod "
             "wrote 'alice'. No kube-apiserver flag changes this, which is why the 'hardened' profile shows the "
             "same: keep these connections off untrusted networks (run them through the SSH or agent tunnels of "
             "scenarios 7 and 8, or not at all).")
    if verifies:
        r.notice("The node proxy is different: it is the kubelet connection (client certificate, and with "
                 "--kubelet-certificate-authority a verified server), so the attacker got nothing there.")
