"""Exercise 1: RBAC least privilege.

The CI bot ``ci-bot`` (a static token user in group ``ci``) deploys to namespace ``staging``. It must
read pods there and the one ConfigMap ``app-config``, and nothing else. Someone gave it a Role that
"just works": every verb on every resource. The tests below say what it needs and what it must not
be able to do. Tighten ROLE until all of them pass:

    cd examples && pytest exercise_rbac_least_privilege.py

Read a failure from the bottom: the hint, then the audit lines (who the apiserver saw, the decision
and the reason it logged: ``RBAC: allowed by RoleBinding ... of Role ...``).
"""

from __future__ import annotations

import pytest

from miniapi.testing import Identity, KitAPIServer, assert_allowed, assert_forbidden, objects

# --- your part -------------------------------------------------------------------------------------
ROLE = objects.role("ci-bot", namespace="staging", rules=[
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
])
# --- end of your part --------------------------------------------------------------------------------

BINDING = objects.role_binding("ci-bot", "ci-bot", users=["ci-bot"], namespace="staging")
TIGHTEN = ("ci-bot may only get/list/watch pods and get the ConfigMap app-config in staging. Replace "
           "the wildcard rule in ROLE with rules naming exactly those verbs and resources (a rule's "
           "resourceNames limits it to named objects).")


@pytest.fixture
def ci_bot(apiserver: KitAPIServer) -> Identity:
    apiserver.ensure_namespace("staging")
    for name in ("app-config", "other-config"):
        apiserver.create({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
                          "metadata": {"name": name, "namespace": "staging"}})
    apiserver.create(objects.pod("staging", "web"))
    apiserver.create(ROLE)
    apiserver.create(BINDING)
    return apiserver.as_user("ci-bot", groups=["ci"], via="token")


async def test_ci_bot_reads_pods(ci_bot: Identity) -> None:
    for path in ("/api/v1/namespaces/staging/pods", "/api/v1/namespaces/staging/pods/web"):
        assert_allowed(await ci_bot.get(path), reason='RoleBinding "ci-bot/staging"',
                       hint="ci-bot must be able to get and list pods in staging")


async def test_ci_bot_reads_its_config(ci_bot: Identity) -> None:
    assert_allowed(await ci_bot.get("/api/v1/namespaces/staging/configmaps/app-config"),
                   hint="ci-bot must be able to get the ConfigMap app-config in staging")


async def test_ci_bot_cannot_read_secrets(ci_bot: Identity) -> None:
    assert_forbidden(await ci_bot.get("/api/v1/namespaces/staging/secrets"), hint=TIGHTEN)


async def test_ci_bot_cannot_delete_pods(ci_bot: Identity) -> None:
    assert_forbidden(await ci_bot.delete("/api/v1/namespaces/staging/pods/web"), hint=TIGHTEN)


async def test_ci_bot_cannot_read_other_configs(ci_bot: Identity) -> None:
    assert_forbidden(await ci_bot.get("/api/v1/namespaces/staging/configmaps/other-config"),
                     hint="Limit the configmaps rule with resourceNames: [app-config].")
    assert_forbidden(await ci_bot.get("/api/v1/namespaces/staging/configmaps"),
                     hint="A list cannot be limited by name: don't grant list on configmaps.")


async def test_ci_bot_stays_in_staging(ci_bot: Identity) -> None:
    assert_forbidden(await ci_bot.get("/api/v1/namespaces/default/pods"),
                     hint="Use a Role and RoleBinding in staging, not a ClusterRoleBinding.")
