"""The lab's tunnel modes for real (``LAB_TUNNEL=ssh|konnectivity``, lab/tunnel.py): each mode needs a lab ``up``
of its own (other apiserver flags, other node processes), so one module-scoped lab per mode serves every check of
that mode; the lab of test_lab.py (if still up) is taken down first: one lab at a time.

As in test_lab.py, the runner's exit code is checked and, independently, what the attacker container printed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.harness import Harness

pytestmark = pytest.mark.lab

SSH_PORTS = "22,10250,10255"
TUNNEL_LABS = {
    "ssh-insecure": ("insecure", {"LAB_TUNNEL": "ssh", "LAB_ATTACK_PORTS": SSH_PORTS}),
    "ssh-hardened": ("hardened", {"LAB_TUNNEL": "ssh", "LAB_ATTACK_PORTS": SSH_PORTS}),
    "konnectivity": ("hardened", {"LAB_TUNNEL": "konnectivity", "LAB_ATTACK_PORTS": "8132,10250"}),
}


@pytest.fixture(scope="module")
def tunnel_lab(request: pytest.FixtureRequest, harness: Harness) -> Iterator[tuple[Harness, str, str]]:
    profile, extra = TUNNEL_LABS[request.param]  # indirect: each test names the labs it needs
    harness.down()
    harness.up(profile, attack="intercept", extra=extra)
    try:
        yield harness, profile, extra["LAB_TUNNEL"]
    finally:
        harness.down()


@pytest.mark.parametrize("tunnel_lab", ["ssh-insecure", "ssh-hardened"], indirect=True)
def test_ssh_tunnel(tunnel_lab: tuple[Harness, str, str]) -> None:
    h, profile, tunnel = tunnel_lab
    out, attacker = h.scenario_passed("ssh-tunnel", profile)
    apiserver = h.service_log("apiserver")
    assert "dialled 10.221.2.11:22 (SSH)" in attacker, attacker
    assert "STOLEN" not in attacker.replace("STOLEN inside the tunnel", ""), attacker  # mitmproxy: nothing
    if profile == "insecure":
        assert "logged in to me as 'kube-tunnel'" in attacker, attacker
        assert "asks for 10.221.2.11:10250" in attacker and "STOLEN inside the tunnel" in attacker, attacker
        assert "env API_KEY=" in attacker, attacker
        assert "ssh host key NOT verified node=node1" in apiserver, apiserver
    else:
        assert "logged in to me" not in attacker and "REFUSED: 10.221.1.10 hung up" in attacker, attacker
        assert "ssh: host key mismatch for 10.221.2.11" in apiserver, apiserver
        assert "host key mismatch" in out.split("$ kubectl logs", 1)[1]


def test_ssh_tunnel_runner_needs_the_ssh_lab(lab: tuple[Harness, str]) -> None:
    """In a direct-mode lab the scenario refuses to judge (exit 2) and says which env file to use."""
    h, profile = lab
    result = h.scenario("ssh-tunnel", profile)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "lab/env/ssh.env" in result.stdout + result.stderr


@pytest.mark.parametrize("tunnel_lab", ["konnectivity"], indirect=True)
def test_agent_tunnel(tunnel_lab: tuple[Harness, str, str]) -> None:
    h, profile, tunnel = tunnel_lab
    out, attacker = h.scenario_passed("agent-tunnel", profile)
    for ip in ("10.221.2.11", "10.221.2.12"):
        assert f"TLS refused: {ip} does not trust my certificate for 10.221.1.10:8132" in attacker, attacker
        assert f"the agent on {ip} refused my certificate" in attacker, attacker
    assert "STOLEN" not in attacker, attacker
    assert "HTTP 000" in out and "login ok for admin-password" in out


def test_agent_tunnel_direct(lab: tuple[Harness, str]) -> None:
    """The insecure column is the direct connection (the attacker reads kubectl logs); a hardened direct lab is
    not this scenario's hardened column: exit 2, pointing to lab/env/konnectivity.env."""
    h, profile = lab
    result = h.scenario("agent-tunnel", profile)
    out = result.stdout + result.stderr
    if profile == "hardened":
        assert result.returncode == 2 and "lab/env/konnectivity.env" in out, out
        return
    assert result.returncode == 0, out
    assert "answers a connection from the control plane (HTTP 200)" in out, out
    assert "STOLEN logs of default/agent-demo-" in h.service_log("attacker")
