"""The pytest plugin (entry point ``pytest11: miniapi``): fixtures for authentication and authorization
tests against an in-process apiserver. Active as soon as the package is installed.

Fixtures (all synchronous, so they work in sync tests and with any pytest-asyncio mode or loop scope):

=========================  =======  =============================================================
fixture                    scope    what
=========================  =======  =============================================================
``cluster_pki``            session  CA, serving cert, SA keys (EC P-256); client certs on demand
``miniapi_loop``           session  the event loop thread the apiservers run on
``apiserver_factory``      test     ``apiserver_factory(*argv, **flags)`` -> started KitAPIServer
``module_apiserver_factory``  module  the same, torn down after the module
``apiserver``              test     the kit's default server; ``@pytest.mark.apiserver(**flags)``
                                    on a test changes its flags
``as_user``                test     ``apiserver.as_user``: ``as_user("alice", groups=["dev"])``
=========================  =======  =============================================================

Each started server and what it was started with is listed in a failing test's report.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the apiserver is imported when a fixture is first used, not when pytest starts
    from miniapi.testing.clusterpki import ClusterPKI
    from miniapi.testing.identity import Identity
    from miniapi.testing.loop import KitLoop
    from miniapi.testing.server import KitAPIServer

Factory = Callable[..., "KitAPIServer"]
_SERVERS_KEY = pytest.StashKey[list["KitAPIServer"]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "apiserver(*argv, **flags): flags for the `apiserver` fixture, named like the "
        "apiserver's command-line flags, e.g. @pytest.mark.apiserver(anonymous_auth=False)")


@pytest.fixture(scope="session")
def cluster_pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    """The session's PKI (see :mod:`miniapi.testing.clusterpki`)."""
    from miniapi.testing.clusterpki import make_cluster_pki

    return make_cluster_pki(tmp_path_factory.mktemp("miniapi-pki"))


@pytest.fixture(scope="session")
def miniapi_loop() -> Iterator[KitLoop]:
    from miniapi.testing.loop import KitLoop

    with KitLoop() as loop:
        yield loop


class _Servers:
    """Starts servers for one fixture scope and stops them all at its end."""

    _ids = itertools.count(1)

    def __init__(self, pki: ClusterPKI, loop: KitLoop, tmp: pytest.TempPathFactory, owner: pytest.Item | None):
        self.pki, self.loop, self.tmp, self.owner = pki, loop, tmp, owner
        self.started: list[KitAPIServer] = []

    def __call__(self, *argv: str, **flags: Any) -> KitAPIServer:
        from miniapi.testing.server import KitAPIServer

        workdir = self.tmp.mktemp(f"apiserver{next(self._ids)}", numbered=True)
        server = KitAPIServer(self.pki, self.loop, workdir, flags, argv).start()
        self.started.append(server)
        if self.owner is not None:
            self.owner.stash.setdefault(_SERVERS_KEY, []).append(server)
        return server

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()


@pytest.fixture
def apiserver_factory(cluster_pki: ClusterPKI, miniapi_loop: KitLoop, tmp_path_factory: pytest.TempPathFactory,
                      request: pytest.FixtureRequest) -> Iterator[Factory]:
    """``apiserver_factory(*argv, **flags)``: start an apiserver for this test (stopped after it)."""
    servers = _Servers(cluster_pki, miniapi_loop, tmp_path_factory, getattr(request, "node", None))
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def module_apiserver_factory(cluster_pki: ClusterPKI, miniapi_loop: KitLoop,
                             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Factory]:
    """Like ``apiserver_factory``, but the servers live until the end of the module."""
    servers = _Servers(cluster_pki, miniapi_loop, tmp_path_factory, None)
    yield servers
    servers.stop_all()


@pytest.fixture
def apiserver(apiserver_factory: Factory, request: pytest.FixtureRequest) -> KitAPIServer:
    """An apiserver with the kit's (kubeadm-like) flags, changed by ``@pytest.mark.apiserver(...)``."""
    argv: list[str] = []
    flags: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("apiserver"))):  # closest marker wins
        argv += list(marker.args)
        flags.update(marker.kwargs)
    return apiserver_factory(*argv, **flags)


@pytest.fixture
def as_user(apiserver: KitAPIServer) -> Callable[..., Identity]:
    """``as_user(name, groups=(), via="cert" | "token")`` on the default ``apiserver``."""
    return apiserver.as_user


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: Any = yield
    servers = item.stash.get(_SERVERS_KEY, [])
    if report.failed and servers:
        lines = [f"{s.url or '(stopped)'}  {' '.join(s.flag_summary())}" for s in servers]
        report.sections.append(("miniapi apiservers", "\n".join(lines)))
    return report
