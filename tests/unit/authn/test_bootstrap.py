"""BootstrapTokenAuthenticator: the Secret-backed rules and the failure catalogue."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from miniapi.authn.base import Credentials
from miniapi.authn.bootstrap import BootstrapTokenAuthenticator, BootstrapTokenError

from .conftest import FakeStore

TOKEN = "abcdef.0123456789abcdef"
NOW = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)


def _secret(**overrides: Any) -> dict[str, Any]:
    """The Secret kubeadm writes, with data fields replaced (None removes) by overrides."""
    values: dict[str, str | None] = {
        "token-id": "abcdef", "token-secret": "0123456789abcdef",
        "expiration": "2026-07-02T12:00:00Z", "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    }
    meta = overrides.pop("metadata", {})
    secret_type = overrides.pop("type", "bootstrap.kubernetes.io/token")
    values.update({k.replace("_", "-"): v for k, v in overrides.items()})
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items() if v is not None}
    return {"apiVersion": "v1", "kind": "Secret", "type": secret_type, "data": data,
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system", **meta}}


def _auth(store: FakeStore) -> BootstrapTokenAuthenticator:
    return BootstrapTokenAuthenticator(store, clock=lambda: NOW)


async def test_valid_token(store: FakeStore) -> None:
    store.put("secrets", _secret(auth_extra_groups="system:bootstrappers:b,system:bootstrappers:a,"
                                                   "system:bootstrappers:a"))
    response = await _auth(store).authenticate(Credentials(authorization=f"Bearer {TOKEN}"))
    assert response is not None and response.authenticator == "bootstrap-token"
    assert response.user.name == "system:bootstrap:abcdef"
    assert response.user.groups == ("system:bootstrappers", "system:bootstrappers:a",
                                    "system:bootstrappers:b")


@pytest.mark.parametrize("extra", [{"expiration": None}, {"auth_extra_groups": None}],
                         ids=["no-expiration", "no-extra-groups"])
async def test_optional_fields(store: FakeStore, extra: dict[str, Any]) -> None:
    store.put("secrets", _secret(**extra))
    response = await _auth(store).authenticate_token(TOKEN)
    assert response is not None


async def test_string_data_is_accepted(store: FakeStore) -> None:
    secret = _secret()
    secret["stringData"] = {k: base64.b64decode(v).decode() for k, v in secret.pop("data").items()}
    store.put("secrets", secret)
    assert await _auth(store).authenticate_token(TOKEN) is not None


@pytest.mark.parametrize("token", [
    "", "abcdef0123456789abcdef", "ABCDEF.0123456789abcdef", "abcdef.0123456789abcde",
    "abcdef.0123456789abcdef0", " abcdef.0123456789abcdef", "abcdef.0123456789abcdef\n", "eyJ.eyJ.sig",
], ids=["empty", "no-dot", "uppercase", "short-secret", "long-secret", "leading-space", "trailing-newline",
        "jwt"])
async def test_malformed_tokens_are_not_mine(store: FakeStore, token: str) -> None:
    store.put("secrets", _secret())
    assert await _auth(store).authenticate_token(token) is None


BAD = {
    "expired": (_secret(expiration="2026-07-01T11:59:59Z"), "has expired"),
    "expires-now": (_secret(expiration="2026-07-01T12:00:00Z"), "has expired"),
    "unparseable-expiration": (_secret(expiration="tomorrow"), "has expired"),
    "wrong-secret": (_secret(token_secret="fedcba9876543210"), "invalid value for key token-secret"),
    "wrong-id": (_secret(token_id="zzzzzz"), "invalid value for key token-id"),
    "usage-false": (_secret(usage_bootstrap_authentication="false"), "not marked usage-bootstrap-auth"),
    "usage-missing": (_secret(usage_bootstrap_authentication=None), "not marked usage-bootstrap-auth"),
    "wrong-type": (_secret(type="Opaque"), "has invalid type"),
    "being-deleted": (_secret(metadata={"deletionTimestamp": "2026-07-01T11:00:00Z"}), "deleted"),
    "bad-extra-group": (_secret(auth_extra_groups="system:masters"), "bootstrap group 'system:masters'"),
    "trailing-comma-group": (_secret(auth_extra_groups="system:bootstrappers:a,"), "bootstrap group ''"),
}


@pytest.mark.parametrize("secret,reason", BAD.values(), ids=BAD.keys())
async def test_bad_tokens_raise_generic_error_with_precise_reason(store: FakeStore, secret: dict[str, Any],
                                                                  reason: str) -> None:
    store.put("secrets", secret)
    with pytest.raises(BootstrapTokenError) as caught:
        await _auth(store).authenticate_token(TOKEN)
    assert str(caught.value) == "invalid bearer token"
    assert reason in caught.value.reason and caught.value.token_id == "abcdef"
    assert "0123456789abcdef" not in caught.value.reason


async def test_missing_secret(store: FakeStore) -> None:
    with pytest.raises(BootstrapTokenError, match="invalid bearer token") as caught:
        await _auth(store).authenticate_token(TOKEN)
    assert "no secret kube-system/bootstrap-token-abcdef" in caught.value.reason


# -- remembered successes, against a real store's resourceVersions ------------------------------------

async def _remembering(now: list[dt.datetime]) -> tuple[Any, BootstrapTokenAuthenticator]:
    from miniapi.store.memory import MemoryStore

    store = MemoryStore()
    await store.create("secrets", _secret())
    return store, BootstrapTokenAuthenticator(store, clock=lambda: now[0])


async def _delete_secret(store: Any) -> None:
    await store.delete("secrets", "kube-system", "bootstrap-token-abcdef")


async def _disable_usage(store: Any) -> None:
    secret = await store.get("secrets", "kube-system", "bootstrap-token-abcdef")
    secret["data"] = _secret(usage_bootstrap_authentication="false")["data"]
    await store.update("secrets", secret)


async def _start_deleting(store: Any) -> None:
    secret = await store.get("secrets", "kube-system", "bootstrap-token-abcdef")
    secret["metadata"]["deletionTimestamp"] = "2026-07-01T11:59:00Z"
    await store.update("secrets", secret)


async def _rotate_secret(store: Any) -> None:
    await store.delete("secrets", "kube-system", "bootstrap-token-abcdef")
    await store.create("secrets", _secret(token_secret="fedcba9876543210"))


@pytest.mark.parametrize(("change", "reason"), [
    (_delete_secret, "no secret kube-system/bootstrap-token-abcdef"),
    (_disable_usage, "not marked usage-bootstrap-authentication=true"),
    (_start_deleting, "is deleted and awaiting removal"),
    (_rotate_secret, "has invalid value for key token-secret"),
], ids=["deleted", "usage-off", "deleting", "rotated"])
async def test_a_remembered_success_ends_with_the_next_change(change: Any, reason: str) -> None:
    store, auth = await _remembering([NOW])
    first = await auth.authenticate_token(TOKEN)
    assert first is not None and await auth.authenticate_token(TOKEN) is first  # remembered
    await change(store)
    with pytest.raises(BootstrapTokenError) as caught:
        await auth.authenticate_token(TOKEN)
    assert reason in caught.value.reason


async def test_a_remembered_success_ends_at_the_expiration() -> None:
    now = [NOW]
    _, auth = await _remembering(now)
    assert await auth.authenticate_token(TOKEN) is not None
    now[0] = dt.datetime(2026, 7, 2, 12, 0, tzinfo=dt.UTC)  # the Secret's expiration, exactly
    with pytest.raises(BootstrapTokenError) as caught:
        await auth.authenticate_token(TOKEN)
    assert "has expired" in caught.value.reason


async def test_a_remembered_success_does_not_read_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    store, auth = await _remembering([NOW])
    reads = []
    real_get = store.get

    async def counting_get(*args: Any) -> Any:
        reads.append(args)
        return await real_get(*args)
    monkeypatch.setattr(store, "get", counting_get)
    for _ in range(3):
        assert await auth.authenticate_token(TOKEN) is not None
    assert len(reads) == 1
    with pytest.raises(BootstrapTokenError):  # another secret for the same id is not the remembered token
        await auth.authenticate_token("abcdef.0123456789abcdee")
