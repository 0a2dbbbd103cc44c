"""Fixtures for the controller tests: a fake apiserver, a started-controller helper, a fast EC CA."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from cryptography import x509

from miniapi.controllermanager.base import Controller, ControllerContext
from pki.certs import PrivateKey, make_ca
from tests.unit.controllermanager.fakes import FakeClient

Start = Callable[..., Awaitable[None]]


@pytest.fixture(scope="session")
def ca() -> tuple[x509.Certificate, PrivateKey]:
    return make_ca(key_type="ec")


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """``await start(ctx, *controllers)``: run the informers and controllers until the test ends."""
    tasks: list[asyncio.Task[None]] = []

    async def _start(ctx: ControllerContext, *controllers: Controller) -> None:
        tasks.extend(ctx.informers.start())
        tasks.extend(asyncio.create_task(c.run()) for c in controllers)
        await asyncio.wait_for(ctx.informers.wait_synced(), 3)

    yield _start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
