from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from miniapi.controllermanager.__main__ import main
from miniapi.controllermanager.config import Config
from miniapi.controllermanager.manager import build_controllers, run
from tests.unit.controllermanager.fakes import FakeClient, make_ctx


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    path = tmp_path / "ca.crt"
    path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return str(path)


def test_controllers_without_their_inputs_are_skipped(ca_file: str) -> None:
    ctx = make_ctx(FakeClient(), Config(kubeconfig="x", root_ca_file=ca_file))
    names = [c.name for c in build_controllers(ctx)]
    assert names == ["csrapproving", "serviceaccount", "root-ca-cert-publisher", "nodelifecycle", "endpoint",
                     "scheduler"]


async def test_run_takes_the_lease_and_releases_it_on_stop(ca_file: str) -> None:
    fake = FakeClient()
    stop = asyncio.Event()
    cfg = Config(kubeconfig="x", root_ca_file=ca_file, controllers=("serviceaccount",),
                 leader_elect_retry_period=0.01)
    fake.put("namespaces", {"metadata": {"name": "default"}, "status": {"phase": "Active"}})
    task = asyncio.create_task(run(cfg, stop, client=fake))
    await fake.wait_for(lambda: fake.obj("serviceaccounts", "default", "default") is not None)
    stop.set()
    assert await asyncio.wait_for(task, 3) == 0
    lease = fake.obj("leases", "kube-controller-manager", "kube-system") or {}
    assert lease["spec"]["holderIdentity"] == ""


def test_main_refuses_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kubeconfig", "/nonexistent"]) == 1
    assert "no such file" in capsys.readouterr().err
