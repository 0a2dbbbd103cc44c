"""The lab's pure parts, no docker: the attacker's decoders, the loot file, the roles' command lines
(the profile switch reused from minilab/profiles.py) and the topology."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from lab import podnet, roles, topology
from lab.attacker import decode, giveup, loot, replay
from lab.attacker.run import nat_rules, pod_and_apiserver_rules
from lab.scenarios import apiserver_proxy, podreport, sa_token, secure_port
from minilab.profiles import resolve

TOP = topology.from_env({})


@pytest.mark.parametrize(("path", "want"), [
    ("/containerLogs/default/web/app", ("default", "web", "app")),
    ("/containerLogs/kube-system/p%2Dx/c?follow=true&tailLines=5", ("kube-system", "p-x", "c")),
    ("/containerLogs/default/web", None),
    ("/pods", None),
], ids=["plain", "query-and-escape", "no-container", "other-path"])
def test_container_logs_target(path: str, want: tuple[str, str, str] | None) -> None:
    got = decode.container_logs_target(path)
    assert (got and (got.namespace, got.pod, got.container)) == want


def test_run_target_with_and_without_uid() -> None:
    ref, cmd = decode.run_target("/run/default/web/app?cmd=cat%20/etc/passwd") or (None, "")
    assert (ref and ref.container, cmd) == ("app", "cat /etc/passwd")
    ref, _ = decode.run_target("/run/default/web/1234-uid/app?cmd=id") or (None, "")
    assert ref is not None and ref.pod == "web" and ref.container == "app"
    assert decode.run_target("/runningpods/") is None


def test_bearer_token_and_jwt_claims() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"sub": "system:serviceaccount:default:app", "aud": ["api"],
                                                  "iss": "https://kubernetes.default.svc"}).encode()).rstrip(b"=")
    jwt = f"eyJhbGciOiJSUzI1NiJ9.{claims.decode()}.sig"
    assert decode.bearer_token({"Authorization": f"Bearer {jwt}"}) == jwt
    assert decode.bearer_token({"authorization": "Basic abc"}) is None
    assert decode.bearer_token({}) is None
    words = decode.describe_token(jwt)
    assert words.startswith("JWT sub=system:serviceaccount:default:app") and "aud=['api']" in words
    assert decode.describe_token("abc.def") == "opaque token (7 characters)"
    assert decode.describe_token("x.!!!.y") == "opaque token (7 characters)"


@pytest.mark.parametrize(("message", "words"), [
    (b"\x00ls -l\n", "stdin: 'ls -l\\n'"),
    (b"\x01total 0\n", "stdout: 'total 0\\n'"),
    (b"\x02oops", "stderr: 'oops'"),
    (b"\xff\x00", "close stdin"),
    (b"\x07?", "channel 7: '?'"),
], ids=["stdin", "stdout", "stderr", "v5-close", "unknown"])
def test_channel_frames(message: bytes, words: str) -> None:
    frame = decode.channel_frame(message)
    assert frame is not None and frame.words() == words
    assert decode.channel_frame(b"") is None


def test_pods_summary_shows_env_values() -> None:
    body = json.dumps({"items": [{"metadata": {"namespace": "default", "name": "web"},
                                  "spec": {"containers": [{"env": [{"name": "DB_PASSWORD", "value": "s3"},
                                                                   {"name": "FROM", "valueFrom": {}}]}]}}]})
    assert decode.pods_summary(body.encode()) == ["pod default/web env DB_PASSWORD=s3"]
    assert decode.pods_summary(b"not json") == []


def test_text_lines_limit_and_bad_bytes() -> None:
    assert decode.text_lines(b"a\nb\xff\n") == ["a", "b\\xff"]
    assert decode.text_lines(b"1\n2\n3\n", limit=2) == ["1", "2", "... (1 more lines)"]


def test_loot_round_trip_and_since(tmp_path: Path) -> None:
    f = tmp_path / "loot.jsonl"
    first = loot.record(f, "log-lines", lines=["db-password=x"])
    with f.open("a") as out:
        out.write('{"half a line')
    later = loot.read(f, since=first["ts"])
    assert [e["kind"] for e in later] == ["log-lines"]
    assert decode.lines_with(later, "password") == ["db-password=x"]
    assert loot.read(tmp_path / "missing") == []
    assert loot.wait_for(lambda ev: False, f, timeout=0.0) == later


def test_roles_use_the_profile_table() -> None:
    insecure, hardened = resolve("insecure"), resolve("hardened")
    api = roles.apiserver_argv(TOP, insecure)
    assert api[:3] == ["miniapi", "--secure-port", "443"] and "--kubelet-certificate-authority" not in " ".join(api)
    assert "--kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt" in roles.apiserver_argv(TOP, hardened)
    kubelet = roles.kubelet_argv(TOP, "node2", insecure)
    assert kubelet[kubelet.index("--node-ip") + 1] == "10.221.2.12"
    assert {"--read-only-port=10255", "--anonymous-auth=true", "--authorization-mode=AlwaysAllow"} <= set(kubelet)
    hard = roles.kubelet_argv(TOP, "node1", hardened)
    assert {"--read-only-port=0", "--anonymous-auth=false", "--authorization-mode=Webhook",
            "--tls-cert-file=/etc/kubernetes/pki/kubelet.crt"} <= set(hard)
    mixed = roles.levels_from_env({"LAB_PROFILE": "hardened", "LAB_SET": "kubelet-readonly=insecure"})
    assert "--read-only-port=10255" in roles.kubelet_argv(TOP, "node1", mixed)
    assert roles.pki_argv(TOP)[-4:] == ["--node", "node1=10.221.2.11", "--node", "node2=10.221.2.12"]


def test_topology_and_attacker_rules() -> None:
    assert TOP.apiserver_url == "https://10.221.1.10:443"
    with pytest.raises(KeyError):
        TOP.node("node9")
    with pytest.raises(ValueError):
        topology.parse_nodes("node1")
    assert nat_rules(TOP, [10250]) == [["PREROUTING", "-s", "10.221.1.10", "-p", "tcp", "--dport", "10250",
                                        "-j", "REDIRECT", "--to-port", "8080"]]


def _jwt(claims: dict[str, object]) -> str:
    return "eyJhbGciOiJSUzI1NiJ9." + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode() + ".s"


def test_replay_plan_from_a_service_account_token() -> None:
    token = _jwt({"sub": "system:serviceaccount:shop:app"})
    assert decode.replay_paths(token) == ["/api/v1/namespaces/shop/pods", "/api/v1/namespaces/shop/secrets",
                                          "/api/v1/namespaces/kube-system/pods"]
    assert decode.replay_paths(_jwt({"sub": "system:serviceaccount:kube-system:x"}))[2] == \
        "/api/v1/namespaces/default/pods"
    assert decode.replay_paths(_jwt({"sub": "alice"})) == []
    assert decode.replay_paths("abcdef.0123456789abcdef") == []  # a bootstrap token is no JWT
    assert decode.fingerprint(token) == decode.fingerprint(token) != decode.fingerprint(token + "x")
    assert len(decode.fingerprint(token)) == 12


@pytest.mark.parametrize(("status", "body", "words"), [
    (200, {"kind": "PodList", "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]},
     "HTTP 200 PodList: a, b"),
    (200, {"kind": "SecretList", "items": []}, "HTTP 200 SecretList: (empty)"),
    (403, {"kind": "Status", "reason": "Forbidden", "message": "secrets is forbidden"},
     "HTTP 403 Forbidden: secrets is forbidden"),
], ids=["list", "empty", "status"])
def test_list_summary(status: int, body: dict[str, object], words: str) -> None:
    assert decode.list_summary(status, json.dumps(body).encode()) == words


def test_list_summary_of_garbage() -> None:
    assert decode.list_summary(502, b"<html>") == "HTTP 502, 6 bytes"


def test_tamper_swaps_the_payee_only_where_it_is() -> None:
    page = b"payment service: please transfer 100 EUR to account alice\nsession=1\n"
    assert decode.tamper(page) == b"payment service: please transfer 100 EUR to account mallory\nsession=1\n"
    assert decode.tamper(b"nothing to see") is None


def test_in_network() -> None:
    assert decode.in_network("10.244.1.2", "10.244.0.0/16")
    assert not decode.in_network("10.221.2.11", "10.244.0.0/16")
    assert not decode.in_network("?", "10.244.0.0/16")


def test_pod_network_of_the_topology() -> None:
    assert [TOP.pod_cidr(n.name) for n in TOP.nodes] == ["10.244.1.0/24", "10.244.2.0/24"]
    assert TOP.pod_gateway("node2") == "10.244.2.1"
    node = TOP.node_of_pod_ip("10.244.2.7")
    assert node is not None and node.name == "node2" and TOP.node_of_pod_ip("10.221.2.11") is None
    assert podnet.node_commands(TOP, "node1") == [
        ["ip", "route", "replace", "local", "10.244.1.0/24", "dev", "lo"],
        ["iptables", "-t", "nat", "-A", "POSTROUTING", "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst",
         "10.96.0.0/12", "-j", "SNAT", "--to-source", "10.244.1.1"]]
    assert podnet.router_commands(TOP) == [["ip", "route", "replace", "10.244.1.0/24", "via", "10.221.2.11"],
                                           ["ip", "route", "replace", "10.244.2.0/24", "via", "10.221.2.12"]]


def test_node_runs_kubelet_with_its_pod_cidr_and_kube_proxy() -> None:
    argvs = roles.node_processes(TOP, "node2", resolve("insecure"))
    kubelet, proxy = argvs[0], argvs[1]
    assert kubelet[kubelet.index("--pod-cidr") + 1] == "10.244.2.0/24"
    assert proxy[:3] == ["minikubeproxy", "--kubeconfig", "/etc/kubernetes/kube-proxy.conf"]


def test_attacker_rules_for_pods_and_the_apiserver() -> None:
    redirect = ["-j", "REDIRECT", "--to-port", "8080"]
    assert pod_and_apiserver_rules(TOP) == [
        ["PREROUTING", "-s", "10.221.1.10", "-d", "10.244.0.0/16", "-p", "tcp", *redirect],
        ["PREROUTING", "-s", "10.221.2.0/24", "-d", "10.221.1.10", "-p", "tcp", "--dport", "443", *redirect],
        ["PREROUTING", "-s", "10.244.0.0/16", "-d", "10.221.1.10", "-p", "tcp", "--dport", "443", *redirect]]


@pytest.mark.parametrize("source", [apiserver_proxy.APP, sa_token.APP + podreport.SERVER,
                                    secure_port.PROBE + podreport.SERVER], ids=["payments", "sa-token", "probe"])
def test_pod_programs_are_valid_python(source: str) -> None:
    compile(source, "pod", "exec")


def _hello(client: str, server: tuple[str, int]) -> SimpleNamespace:
    """What mitmproxy hands the TLS hooks, as far as lab/attacker/giveup.py reads it."""
    return SimpleNamespace(context=SimpleNamespace(client=SimpleNamespace(peername=(client, 40000)),
                                                   server=SimpleNamespace(address=server)),
                           ignore_connection=False)


def test_attacker_gives_up_per_client_on_the_apiserver_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(giveup, "LOOT", tmp_path / "loot.jsonl")
    g = giveup.GiveUp()
    kubelet, pod, apiserver = "10.221.2.11", "10.244.1.1", ("10.221.1.10", 443)
    first = _hello(kubelet, apiserver)
    g.tls_clienthello(first)
    assert not first.ignore_connection  # tried once
    g.tls_failed_client(first)
    again, other = _hello(kubelet, apiserver), _hello(pod, apiserver)
    g.tls_clienthello(again)
    g.tls_clienthello(other)
    assert again.ignore_connection and not other.ignore_connection  # only the client that refused
    apiserver_to_kubelet = _hello("10.221.1.10", ("10.221.2.11", 10250))
    g.tls_failed_client(apiserver_to_kubelet)
    retry = _hello("10.221.1.10", ("10.221.2.11", 10250))
    g.tls_clienthello(retry)
    assert not retry.ignore_connection  # scenario 1 keeps being attacked
    kinds = [(e["kind"], e["client"]) for e in loot.read(tmp_path / "loot.jsonl")]
    assert kinds == [("gave-up", kubelet), ("passthrough", kubelet)]


def test_replay_only_service_account_tokens_sent_to_the_apiserver(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    class NoThread:  # no replay may leave this machine: record instead of starting
        def __init__(self, target: object, args: tuple[str], daemon: bool, name: str) -> None:
            self.token = args[0]

        def start(self) -> None:
            started.append(self.token)

    monkeypatch.setattr(replay, "threading", SimpleNamespace(Thread=NoThread))
    r = replay.Replay()
    sa = _jwt({"sub": "system:serviceaccount:default:app"})
    r.bearer_token(sa, "10.221.2.11:10250")  # not the apiserver
    r.bearer_token("abcdef.0123456789abcdef", "10.221.1.10:443")  # not a service-account token
    r.bearer_token(sa, "10.221.1.10:443")
    r.bearer_token(sa, "10.221.1.10:443")  # once per token
    assert started == [sa]


def test_node_supervisor_restarts_an_exited_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    """lab/roles.py _supervise: systemd's Restart=always for a kubelet whose first bootstrap failed."""
    import signal
    import subprocess
    import sys
    import time

    marker, runs = tmp_path / "failed-once", tmp_path / "runs"
    flaky = f"echo run >> {runs}; if [ ! -e {marker} ]; then touch {marker}; exit 1; fi; exec sleep 60"
    code = ("import lab.roles as r; r.RESTART_SEC = 0.1; "
            f"raise SystemExit(r._supervise([['sh', '-c', {flaky!r}], ['sleep', '60']]))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 20
    while (not runs.exists() or len(runs.read_text().splitlines()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert runs.read_text().splitlines() == ["run", "run"], out
    assert "exited 1; restarting it" in out and proc.returncode == 0, out
