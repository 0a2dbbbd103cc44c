from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.controllermanager.config import Config
from miniapi.controllermanager.nodeipam import CIDRSet, CIDRSetError, NodeIPAMController
from tests.unit.controllermanager.conftest import Start
from tests.unit.controllermanager.fakes import FakeClient, make_ctx


def test_blocks_in_order_then_exhausted() -> None:
    cidrs = CIDRSet("10.244.0.0/22", 24)
    assert [cidrs.allocate() for _ in range(4)] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24",
                                                    "10.244.3.0/24"]
    with pytest.raises(CIDRSetError, match="no remaining CIDRs"):
        cidrs.allocate()


def test_occupied_blocks_are_skipped_and_released_ones_reused_after_wrapping() -> None:
    cidrs = CIDRSet("10.244.0.0/22", 24)
    cidrs.occupy("10.244.0.0/24")
    cidrs.occupy("10.244.2.0/24")
    assert cidrs.allocate() == "10.244.1.0/24"
    assert cidrs.allocate() == "10.244.3.0/24"
    cidrs.release("10.244.0.0/24")
    assert cidrs.allocate() == "10.244.0.0/24"  # wrapped around, as the real cidrset's nextCandidate


def test_ipv6() -> None:
    assert CIDRSet("fd00:10:244::/56", 64).allocate() == "fd00:10:244::/64"


@pytest.mark.parametrize(("cidr", "mask", "bad"), [
    ("10.244.0.0/16", 24, "10.245.0.0/24"), ("10.244.0.0/16", 24, "10.244.0.0/25"),
    ("10.244.0.0/16", 24, "fd00::/24")], ids=["outside", "wrong-size", "wrong-family"])
def test_foreign_cidrs_are_refused(cidr: str, mask: int, bad: str) -> None:
    with pytest.raises(CIDRSetError):
        CIDRSet(cidr, mask).occupy(bad)


@given(st.integers(min_value=8, max_value=30), st.integers(min_value=0, max_value=8), st.data())
def test_allocations_are_distinct_blocks_inside_the_cluster_cidr(prefix: int, extra: int, data: st.DataObject) -> None:
    mask = min(prefix + extra, 32)
    cluster = ipaddress.ip_network(f"10.0.0.0/{prefix}", strict=False)
    cidrs = CIDRSet(str(cluster), mask)
    n = data.draw(st.integers(min_value=1, max_value=min(cidrs.size, 64)))
    got = [ipaddress.ip_network(cidrs.allocate()) for _ in range(n)]
    assert len(set(got)) == n
    assert all(g.prefixlen == mask and g.subnet_of(cluster) for g in got)  # type: ignore[arg-type]


async def test_controller_keeps_existing_and_fills_in_missing(start: Start, fake: FakeClient) -> None:
    fake.put("nodes", {"metadata": {"name": "a"}, "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}})
    fake.put("nodes", {"metadata": {"name": "b"}, "spec": {}})
    cfg = Config(kubeconfig="x", allocate_node_cidrs=True, cluster_cidr="10.244.0.0/16")
    ctx = make_ctx(fake, cfg)
    await start(ctx, NodeIPAMController(ctx))
    fake.put("nodes", {"metadata": {"name": "c"}, "spec": {}})
    await fake.wait_for(lambda: all((fake.obj("nodes", n) or {}).get("spec", {}).get("podCIDR") for n in "abc"))
    assert [(w.name, w.body) for w in fake.writes()] == [
        ("b", {"spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}}),
        ("c", {"spec": {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]}})]
