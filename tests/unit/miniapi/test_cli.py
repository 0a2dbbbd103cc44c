"""``python -m miniapi``: a refused configuration is one ``Error: ...`` line and exit status 1, never a
traceback; ``--help`` flags the insecure defaults."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "miniapi", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.fixture
def sa_key(tmp_path: Path) -> str:
    path = tmp_path / "sa.key"
    path.write_text("not read before validation passes")
    return str(path)


@pytest.mark.parametrize("args, message", [
    (["--authorization-mode", "Foo"], "--authorization-mode: unknown mode 'Foo'"),
    (["--authorization-mode", "RBAC,RBAC"], "mode specified more than once"),
    (["--tls-cert-file", "/etc/hostname"], "must be given together"),
    (["--client-ca-file", "/nonexistent/ca.crt"], "--client-ca-file: cannot read"),
    (["--service-cluster-ip-range", "banana"], "--service-cluster-ip-range"),
], ids=["unknown-mode", "duplicate-mode", "cert-without-key", "missing-file", "bad-cidr"])
def test_refused_config_is_one_error_line(sa_key: str, args: list[str], message: str) -> None:
    proc = run("--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
               "--service-account-signing-key-file", sa_key, "--secure-port", "1", *args)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_required_flags_is_one_error_line() -> None:
    proc = run("--authorization-mode", "Foo")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: --service-account-issuer is a required flag")
    assert len(proc.stderr.splitlines()) == 1


def _option_help(text: str, flag: str) -> str:
    """The help block of one option: from its flag line to the next option line."""
    match = re.search(rf"^  {re.escape(flag)}\b.*?(?=^  -)", text, re.S | re.M)
    assert match, flag
    return " ".join(match.group(0).split())


def test_help_marks_the_insecure_defaults() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for flag in ("--anonymous-auth", "--authorization-mode", "--kubelet-certificate-authority"):
        assert "INSECURE DEFAULT" in _option_help(proc.stdout, flag), flag
    assert "INSECURE" not in _option_help(proc.stdout, "--client-ca-file")
