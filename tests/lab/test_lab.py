"""The workshop lab for real: docker engine, compose, real mitmproxy on the router, real kubectl.

Each scenario runs as a learner runs it (``docker-compose run --rm client lab scenario NAME``) in
both profiles; the runner's exit code is checked, and so is what the attacker container printed,
independently of the runner.
"""

from __future__ import annotations

import pytest

from tests.lab.harness import Harness

pytestmark = pytest.mark.lab

X509 = "x509: certificate signed by unknown authority"


def _output(h: Harness, *args: str) -> tuple[int, str]:
    result = h.compose(*args, capture=True, check=False, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_kubelet_mitm(lab: tuple[Harness, str]) -> None:
    h, profile = lab
    out, attacker = h.scenario_passed("kubelet-mitm", profile)
    if profile == "insecure":
        assert "db-password=" in out.split("kubectl logs", 2)[-1]
        assert "request: 10.221.1.10 -> /containerLogs/default/mitm-demo-" in out
        assert "STOLEN logs of default/mitm-demo-" in attacker and "db-password=" in attacker, attacker
        if "$ kubectl exec" in out:  # where the apiserver serves pods/exec (issue 4)
            assert "exec to the pod: stdin: 'admin-password=" in attacker, attacker
    else:
        assert X509 in out
        assert "STOLEN" not in attacker and "TLS dropped: 10.221.1.10" in attacker, attacker


def test_kubelet_api(lab: tuple[Harness, str]) -> None:
    h, profile = lab
    out, _ = h.scenario_passed("kubelet-api", profile)
    codes = [line.split()[1] for line in out.splitlines() if line.strip().startswith("HTTP ")]
    # /pods anonymous on 10250, /pods on 10255, /run anonymous, /pods as alice
    assert codes == (["200", "200", "200", "200"] if profile == "insecure" else ["401", "000", "401", "403"]), out
    assert ("uid=0(root)" in out) == (profile == "insecure")


def test_runner_fails_when_the_outcome_differs(lab: tuple[Harness, str]) -> None:
    """The runner told the opposite profile expects the opposite outcome: it must exit 1, saying so."""
    h, profile = lab
    other = "hardened" if profile == "insecure" else "insecure"
    code, out = _output(h, "run", "--rm", "-e", f"LAB_PROFILE={other}", "client", "lab", "scenario", "kubelet-mitm")
    assert code == 1, out
    assert "UNEXPECTED" in out and "did NOT turn out as expected" in out


def test_runner_refuses_a_lab_without_the_attacker(lab: tuple[Harness, str]) -> None:
    h, profile = lab
    code, out = _output(h, "run", "--rm", "-e", "LAB_LOOT=/tmp/no-attacker.jsonl", "client",
                        "lab", "scenario", "kubelet-mitm", "--mode", profile)
    assert code == 2, out
    assert "LAB_ATTACK=intercept" in out


def test_mode_must_match_the_running_lab(lab: tuple[Harness, str]) -> None:
    h, profile = lab
    other = "hardened" if profile == "insecure" else "insecure"
    code, out = _output(h, "run", "--rm", "client", "lab", "scenario", "kubelet-api", "--mode", other)
    assert code == 2, out
    assert f"lab/env/{other}.env" in out


RELAY_LAB = "hardened:apiserver-kubelet-ca=insecure"  # lab/env/relay.env


def test_apiserver_proxy(lab: tuple[Harness, str]) -> None:
    h, profile = lab
    out, attacker = h.scenario_passed("apiserver-proxy", profile)
    # what kubectl printed for the pod (http and https:) and the service proxy: the attacker's version
    assert out.count("please transfer 100 EUR to account mallory") == 3, out
    assert ":8080/invoices/4711 HTTP/1.1" in attacker and ":8443/invoices/4711 HTTP/1.1" in attacker, attacker
    assert attacker.count("ALTERED the answer of 10.244.1.") >= 3, attacker
    healthz = "GET https://10.221.2.11:10250/healthz"
    assert (healthz in attacker) == (profile == "insecure"), attacker
    assert (X509 in out) == (profile == "hardened"), out


def test_sa_token(lab: tuple[Harness, str]) -> None:
    h, profile = lab
    out, attacker = h.scenario_passed("sa-token", profile)
    if profile == "insecure":
        assert "STOLEN bearer token from 10.244.1.1 to 10.221.1.10:443: JWT sub=system:serviceaccount:default:app-" \
            in attacker, attacker
        replays = [line for line in attacker.splitlines() if "REPLAY of token" in line]
        assert any("/namespaces/default/pods -> HTTP 200 PodList" in line for line in replays), attacker
        assert any("/namespaces/default/secrets -> HTTP 403 Forbidden" in line for line in replays), attacker
        assert any("/namespaces/kube-system/pods -> HTTP 403 Forbidden" in line for line in replays), attacker
    else:
        assert "STOLEN bearer token" not in attacker, attacker
        assert "TLS refused: 10.244.1.1 does not trust my certificate for 10.221.1.10:443" in attacker, attacker
        assert "giving up on 10.244.1.1 -> 10.221.1.10:443" in attacker, attacker
        assert "CERTIFICATE_VERIFY_FAILED" in out, out


def test_secure_port(lab: tuple[Harness, str]) -> None:
    h, profile = lab
    out, attacker = h.scenario_passed("secure-port", profile)
    assert "issuer=CN = mitmproxy" in out and "issuer=CN = kubernetes" in out, out
    for ip in ("10.221.2.11", "10.221.2.12"):
        assert f"TLS refused: {ip} does not trust my certificate for 10.221.1.10:443" in attacker, attacker
        assert f"giving up on {ip} -> 10.221.1.10:443" in attacker, attacker
        read = [line for line in attacker.splitlines() if f"| {ip}:" in line
                and any(f": {verb} https://" in line for verb in ("GET", "POST", "PUT", "PATCH", "DELETE"))]
        assert not read and f"STOLEN bearer token from {ip}" not in attacker, read


@pytest.mark.parametrize("lab", ["insecure", "hardened", RELAY_LAB], indirect=True)
def test_kubelet_relay(lab: tuple[Harness, str]) -> None:
    h, profile = lab
    result = h.scenario("kubelet-relay", profile)
    out = result.stdout + result.stderr
    attacker = h.service_log("attacker")
    relay = h.lab_env.get("LAB_SET") == RELAY_LAB.partition(":")[2]
    if profile == "hardened" and not relay:  # --kubelet-certificate-authority: nothing to relay
        assert result.returncode == 2 and "lab/env/relay.env" in out, out
        return
    assert result.returncode == 0, out
    assert "request relayed: GET /containerLogs/default/relay-demo-" in out, out
    if profile == "insecure":
        assert "STOLEN logs of default/relay-demo-" in attacker and "api-key=" in attacker, attacker
        return
    assert "error: You must be logged in to the server" in out.split("$ kubectl logs", 1)[1], out
    assert "the kubelet's answer: HTTP 401" in out, out
    assert "api-key=" not in attacker, attacker
    # scenario 1's third outcome in the same lab: in the middle, but the kubelet refuses the relay
    mitm = h.scenario("kubelet-mitm", profile)
    assert mitm.returncode == 0, mitm.stdout + mitm.stderr
    assert "the kubelet refuses the relay" in mitm.stdout, mitm.stdout


def test_bootstrap(lab: tuple[Harness, str]) -> None:
    """Scenario 6: node3 joined by TLS bootstrapping; hardened, its serving CSR is approved by the scenario."""
    h, profile = lab
    out, attacker = h.scenario_passed("bootstrap", profile)
    assert "kubernetes.io/kube-apiserver-client-kubelet   system:bootstrap:" in out and "Approved,Issued" in out
    if profile == "insecure":
        assert "issuer=CN = node3-ca@" in out, out
        assert "STOLEN logs of default/join-demo-" in attacker and "db-password=" in attacker, attacker
    else:
        assert any(ln.split()[2:4] == ["kubernetes.io/kubelet-serving", "system:node:node3"] and ln.endswith("Pending")
                   for ln in out.splitlines() if ln.strip().startswith("csr-")), out
        assert "approved" in out and "issuer=CN = kubernetes" in out and "Verify return code: 0 (ok)" in out, out
        assert X509 in out
        assert "STOLEN logs of default/join-demo-" not in attacker, attacker
        assert "TLS dropped: 10.221.1.10" in attacker or "TLS refused: 10.221.1.10" in attacker, attacker
