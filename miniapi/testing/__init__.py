"""A testing kit for authentication and authorization flows against a real, in-process apiserver.

Installed with the package, the pytest plugin (:mod:`miniapi.testing.plugin`) gives tests the
fixtures ``apiserver``, ``apiserver_factory``, ``as_user`` and ``cluster_pki``::

    from miniapi.testing import assert_forbidden

    async def test_alice_cannot_read_secrets(as_user):
        alice = as_user("alice", groups=["dev"])
        resp = await alice.get("/api/v1/namespaces/default/secrets")
        assert_forbidden(resp, user="alice")

docs/testing-kit.md tells the whole story; examples/ holds workshop exercises built on it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from miniapi.testing import objects
    from miniapi.testing.asserts import assert_allowed, assert_forbidden, assert_unauthenticated, audit_event
    from miniapi.testing.audit import describe as describe_audit_event
    from miniapi.testing.badcreds import BAD_CREDENTIALS, CATALOGUE, BadCredential
    from miniapi.testing.clusterpki import CertPair, ClusterPKI, make_cluster_pki
    from miniapi.testing.flags import FlagError
    from miniapi.testing.identity import Identity, Response
    from miniapi.testing.loop import KitLoop, shared_loop
    from miniapi.testing.server import KitAPIServer, SetupError, start_apiserver

# Loaded on first use, so that the pytest plugin (imported by every pytest run once the package is
# installed) costs nothing until a test asks for an apiserver.
_EXPORTS = {
    "objects": "miniapi.testing.objects",
    "assert_allowed": "miniapi.testing.asserts", "assert_forbidden": "miniapi.testing.asserts",
    "assert_unauthenticated": "miniapi.testing.asserts", "audit_event": "miniapi.testing.asserts",
    "describe_audit_event": "miniapi.testing.audit:describe",
    "BAD_CREDENTIALS": "miniapi.testing.badcreds", "CATALOGUE": "miniapi.testing.badcreds",
    "BadCredential": "miniapi.testing.badcreds",
    "CertPair": "miniapi.testing.clusterpki", "ClusterPKI": "miniapi.testing.clusterpki",
    "make_cluster_pki": "miniapi.testing.clusterpki",
    "FlagError": "miniapi.testing.flags",
    "Identity": "miniapi.testing.identity", "Response": "miniapi.testing.identity",
    "KitLoop": "miniapi.testing.loop", "shared_loop": "miniapi.testing.loop",
    "KitAPIServer": "miniapi.testing.server", "SetupError": "miniapi.testing.server",
    "start_apiserver": "miniapi.testing.server",
}


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'miniapi.testing' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, attr or name)
    globals()[name] = value
    return value


__all__ = [
    "BAD_CREDENTIALS",
    "CATALOGUE",
    "BadCredential",
    "CertPair",
    "ClusterPKI",
    "FlagError",
    "Identity",
    "KitAPIServer",
    "KitLoop",
    "Response",
    "SetupError",
    "assert_allowed",
    "assert_forbidden",
    "assert_unauthenticated",
    "audit_event",
    "describe_audit_event",
    "make_cluster_pki",
    "objects",
    "shared_loop",
    "start_apiserver",
]
