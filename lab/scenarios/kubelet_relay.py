"""Scenario 2: the attacker in the middle of apiserver -> kubelet relays the request; the kubelet
decides whether the relayed request gets an answer.

The source page: "Ausserdem sollte, Kubelet Authentifizierung und/oder Autorisierung sollte aktiviert
sein, um die kubelet-API zu sichern." The apiserver does not verify the kubelet's certificate here
(``apiserver-kubelet-ca=insecure``), so mitmproxy on the router terminates the apiserver's TLS and
opens its own connection to the kubelet. It can read and forward the request, but it cannot present
the apiserver's client certificate (it never had the key): the kubelet sees an anonymous caller.

1. ``kubelet-authn``/``kubelet-authz`` insecure (``--anonymous-auth=true``, ``AlwaysAllow``): the
   anonymous relay is served: ``kubectl logs`` works and the attacker read every line.
2. ``kubelet-authn`` hardened (``--anonymous-auth=false``, webhook, ``--client-ca-file``): the kubelet
   answers the relay ``401 Unauthorized``; the apiserver passes it on and ``kubectl logs`` prints
   ``error: You must be logged in to the server (the server has asked for the client to provide
   credentials ( pods/log NAME))``; the attacker read the request (path and pod name), not a log line.
3. ``kubelet-authz`` hardened alone (``--authorization-mode=Webhook``): the anonymous caller is asked
   about (SubjectAccessReview) and refused: ``403 Forbidden``.

It needs a lab where the apiserver does not verify (else scenario 1's x509 refusal comes first):
the insecure profile for 1, and ``lab/env/relay.env`` (hardened, ``LAB_SET=apiserver-kubelet-ca=insecure``)
for 2. In a lab with ``--kubelet-certificate-authority`` it exits 2 and says so.
"""

from __future__ import annotations

import secrets
import time

from lab.attacker import decode, loot
from lab.scenarios.base import Context, NotSetUp
from minilab.profiles import Level

NAME = "kubelet-relay"
SUMMARY = "the attacker relays apiserver -> kubelet requests: served anonymously, or 401/403 with kubelet authn/authz"
PATHS = ("apiserver-kubelet-ca", "kubelet-authn", "kubelet-authz")
KUBECTL_401 = "You must be logged in to the server"


def pod_manifest(name: str, node: str, secret: str) -> dict[str, object]:
    script = f"echo 'invoice run started'; echo 'api-key={secret}'; exec sleep 3600"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"lab.scenario": NAME}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "busybox", "command": ["/bin/sh", "-c", script]}]}}


def expected_status(ctx: Context) -> int:
    """What the kubelet answers a caller without credentials (the relay)."""
    if ctx.level("kubelet-authn") is Level.HARDENED:
        return 401
    return 403 if ctx.level("kubelet-authz") is Level.HARDENED else 200


def run(ctx: Context) -> None:
    r = ctx.report
    ctx.need_attacker()
    if ctx.level("apiserver-kubelet-ca") is Level.HARDENED:
        raise NotSetUp("the apiserver verifies the kubelets (--kubelet-certificate-authority), so it never talks to "
                       "the attacker and nothing is relayed (that is scenario kubelet-mitm); to watch the kubelet "
                       "stop the relay, start the lab with `--env-file lab/env/relay.env` "
                       "(LAB_SET=apiserver-kubelet-ca=insecure)")
    node = ctx.top.nodes[0]
    secret = secrets.token_hex(6)
    pod = f"relay-demo-{secret[:6]}"
    want = expected_status(ctx)
    r.step(f"Create a pod on {node.name} whose log holds an API key")
    with ctx.pod(pod_manifest(pod, node.name, secret)) as started:
        if not started:
            return
        since = time.time()
        r.step("kubectl logs: apiserver -> router, where mitmproxy relays the request to the kubelet without the "
               "apiserver's client certificate")
        got = ctx.kubectl("logs", pod)
        out = got.stdout + got.stderr
        if want == 200:
            r.check(got.returncode == 0 and f"api-key={secret}" in out, "kubectl logs works: the kubelet served the "
                    "anonymous relay", f"kubectl logs exited {got.returncode}")
        else:  # the apiserver passes the kubelet's status on; kubectl words a 401 as if it were its own login
            words = KUBECTL_401 if want == 401 else "Forbidden"
            r.check(got.returncode != 0 and words in out and secret not in out,
                    f"kubectl logs fails with the kubelet's {want}: '{words}'", f"kubectl logs exited {got.returncode}")
        _attacker(ctx, pod, secret, want, since)


def _attacker(ctx: Context, pod: str, secret: str, want: int, since: float) -> None:
    r = ctx.report
    apiserver = ctx.top.apiserver_ip

    def answers(events: list[loot.Event]) -> list[loot.Event]:
        return [e for e in events if e.get("kind") == "log-lines" and e.get("client") == apiserver
                and pod in str(e.get("what"))]

    events = loot.wait_for(lambda ev: bool(answers(ev)), ctx.loot_file, since)
    requests = [e for e in events if e.get("kind") == "request" and e.get("client") == apiserver
                and f"/containerLogs/default/{pod}/" in str(e.get("path"))]
    r.step("What the attacker got (also in `docker compose logs attacker`)")
    for e in requests:
        r.say(f"request relayed: {e.get('method')} {e.get('path')} -> {e.get('server')}", "      ")
    for e in answers(events):
        r.say(f"the kubelet's answer: HTTP {e.get('status')}", "      ")
        for line in (e.get("lines") or [])[:4]:
            r.say(f"| {line}", "        ")
    r.check(bool(requests), "the attacker read the apiserver's request (path and pod name): the apiserver did not "
            "verify whom it talked to", "no relayed request in the loot")
    statuses = [int(e.get("status") or 0) for e in answers(events)]
    stolen = decode.lines_with(events, secret)
    r.check(want in statuses, f"the kubelet answered the relay {want}", f"the kubelet's answers: {statuses}")
    if want == 200:
        r.check(bool(stolen), "the attacker read the API key in the log", "no log line with the key in the loot")
        r.notice("The kubelet let an anonymous caller read the pod's log: the relay needed no credentials at all. "
                 "The attacker did not even need the apiserver: it was enough to be on the path.")
    else:
        r.check(not stolen, "not a single log line reached the attacker", f"the attacker read {stolen}")
        r.notice("mitmproxy could read the apiserver's request, but it had to open its own TLS connection to the "
                 "kubelet, without the apiserver's client certificate (it never had the private key). With "
                 "--anonymous-auth=false the kubelet answers such a caller 401; with --authorization-mode=Webhook "
                 "it asks the apiserver and answers 403. kubectl words the kubelet's 401 as 'You must be logged "
                 "in to the server', though the learner's own login is fine. The relay is stopped at the kubelet; "
                 "--kubelet-certificate-authority (scenario kubelet-mitm) stops it one hop earlier.")
