from __future__ import annotations

import asyncio

import pytest

from miniapi.client import ClientError
from miniapi.controllermanager.events import EventRecorder
from miniapi.controllermanager.leaderelection import ElectionConfig, LeaderElector, LeadershipLost
from tests.unit.controllermanager.fakes import FakeClient

NODE = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1", "uid": "u1"}}


async def test_event_goes_to_default_for_cluster_scoped_and_repeats_count(fake: FakeClient) -> None:
    rec = EventRecorder(fake, "node-controller")
    await rec.event(NODE, "Node", "Normal", "NodeNotReady", "Node n1 status is now: NodeNotReady")
    await rec.event(NODE, "Node", "Normal", "NodeNotReady", "Node n1 status is now: NodeNotReady")
    create, patch = fake.writes()
    assert (create.verb, create.namespace, patch.verb, patch.name) == ("create", "default", "patch", create.name)
    assert create.name.startswith("n1.") and create.body["count"] == 1 and patch.body["count"] == 2
    assert create.body["source"] == {"component": "node-controller"}
    assert create.body["involvedObject"]["uid"] == "u1"


async def test_event_errors_are_swallowed(fake: FakeClient) -> None:
    fake.errors[("create", "events", "")] = ClientError(403, "Forbidden", "no")
    await EventRecorder(fake, "x").event(NODE, "Node", "Warning", "R", "m")  # does not raise


def elector(fake: FakeClient, identity: str, lease: float = 0.2) -> LeaderElector:
    return LeaderElector(fake, ElectionConfig(identity, lease_duration=lease, renew_deadline=0.1, retry_period=0.01))


async def test_first_candidate_creates_the_lease_second_waits_until_release(fake: FakeClient) -> None:
    a, b = elector(fake, "a"), elector(fake, "b", lease=60)
    await asyncio.wait_for(a.acquire(), 2)
    spec = (fake.obj("leases", "kube-controller-manager", "kube-system") or {})["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("a", 0)
    waiting = asyncio.create_task(b.acquire())
    with pytest.raises(asyncio.TimeoutError):  # a bounded wait for something that must not happen
        await asyncio.wait_for(asyncio.shield(waiting), 0.1)
    assert b._observed is not None and not b.is_leader
    await a.release()
    await asyncio.wait_for(waiting, 2)
    spec = (fake.obj("leases", "kube-controller-manager", "kube-system") or {})["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)


async def test_an_expired_holder_is_taken_over(fake: FakeClient) -> None:
    await asyncio.wait_for(elector(fake, "dead", lease=0.05).acquire(), 2)
    await asyncio.wait_for(elector(fake, "b").acquire(), 2)  # waits ~leaseDuration of our own clock
    assert (fake.obj("leases", "kube-controller-manager", "kube-system") or {})["spec"]["holderIdentity"] == "b"


async def test_leader_gives_up_after_the_renew_deadline(fake: FakeClient) -> None:
    a = elector(fake, "a")
    await a.acquire()
    lease = fake.obj("leases", "kube-controller-manager", "kube-system") or {}
    fake.put("leases", {**lease, "spec": {**lease["spec"], "holderIdentity": "usurper"}})
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(a.hold(), 2)
