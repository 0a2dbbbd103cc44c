"""A pod that reports what it saw on its own port, for scenarios whose pods test a connection.

In the hardened lab the attacker still sits on apiserver -> kubelet:10250, and the apiserver
refuses it (``--kubelet-certificate-authority``), so ``kubectl logs``/``exec`` fail there: scenario 1
is exactly that. A pod that must tell the learner what happened therefore serves its report
itself, as plain text on ``POD_IP:8080``, and the scenario reads it from the client container
(pod IPs are routed, lab/topology.py; the attacker leaves the client's connections alone)::

    $ curl -sS http://10.244.1.2:8080/
    attempt 1: listed pods in default: web-1 sa-token-3f2a
    done

:data:`SERVER` is Python source appended to the pod's program: it serves the list ``lines``.
"""

from __future__ import annotations

import time

from lab.scenarios.base import Context

SERVER = """
import http.server, socketserver
class Report(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("\\n".join(lines) + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
class Server(http.server.HTTPServer):
    def server_bind(self):  # without HTTPServer's reverse DNS lookup of the pod IP: the lab has no DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "report", self.server_address[1]
Server((os.environ["POD_IP"], 8080), Report).serve_forever()
"""
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def read(ctx: Context, pod: str, timeout: float = 60) -> list[str]:
    """The pod's report once it says ``done`` (shown as the curl a learner would type)."""
    ip = ctx.kubectl("get", "pod", pod, "-o", "jsonpath={.status.podIP}", show=False).stdout.strip()
    argv = ["curl", "-sS", "--max-time", "10", "--retry", "30", "--retry-connrefused", "--retry-delay", "1",
            f"http://{ip}:8080/"]
    deadline = time.monotonic() + timeout
    got = ctx.run(argv, show=False)
    while "done" not in got.stdout.splitlines() and time.monotonic() < deadline:
        time.sleep(1)
        got = ctx.run(argv, show=False)
    ctx.report.say(f"$ curl -sS http://{ip}:8080/      # the pod's report")
    ctx.report.say(got.stdout.rstrip() or got.stderr.rstrip(), "      ")
    return got.stdout.splitlines()
