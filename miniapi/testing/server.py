"""KitAPIServer: a real :class:`~miniapi.server.APIServer`, in process, on the kit loop, plus the
identities and setup helpers a test needs.

    with KitAPIServer(pki, loop, workdir, {"anonymous_auth": False}) as api:
        alice = api.as_user("alice", groups=["dev"])          # client certificate
        api.create(objects.role_binding(...))                  # as kubernetes-admin (system:masters)
        resp = alice.sync.get("/api/v1/namespaces/default/pods")
        assert_forbidden(resp)

Setup helpers (``create``, ``apply``, ``delete``, ``as_service_account``...) are synchronous: they
run as ``kubernetes-admin`` over HTTPS on the kit loop and wait until the RBAC and Node authorizers
have seen the change, so the next request is judged on it. They create every ServiceAccount and
Namespace they rely on (tolerating AlreadyExists) instead of trusting a controller to.

Token-file users (:meth:`as_user` with ``via="token"``) are appended to the kit's own
``--token-auth-file`` and reloaded into the running chain (see :mod:`.inprocess`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import secrets
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from miniapi.config import Config
from miniapi.server import APIServer
from miniapi.testing import objects
from miniapi.testing.audit import AuditView
from miniapi.testing.clusterpki import CertPair, ClusterPKI, make_cluster_pki
from miniapi.testing.flags import build_config, to_argv
from miniapi.testing.identity import Identity, Response
from miniapi.testing.inprocess import InProcessAPIServer, KitTokenFile, reload_token_file, token_of
from miniapi.testing.loop import KitLoop, shared_loop
from pki.tokens import make_bootstrap_token

Obj = dict[str, Any]


class SetupError(RuntimeError):
    """A setup request (as kubernetes-admin) that the apiserver refused."""

    def __init__(self, what: str, resp: Response) -> None:
        super().__init__(f"{what}: {resp.status} {resp.status_reason}: {resp.message}")
        self.response = resp


class KitAPIServer(AuditView):
    """One in-process apiserver configured like ``python -m miniapi`` (see :mod:`.flags`)."""

    def __init__(self, pki: ClusterPKI, kit_loop: KitLoop, workdir: Path,
                 flags: Mapping[str, Any] | None = None, argv: Sequence[str] = ()) -> None:
        self.pki, self.kit_loop, self.workdir = pki, kit_loop, workdir
        self.token_file = workdir / "tokens.csv"
        self._tokens = KitTokenFile(self.token_file)  # filled by as_user(via="token")
        self.config: Config
        self.config, self.flags = build_config(pki, self.token_file, flags, argv)
        self.server: APIServer | None = None
        self.url, self.port = "", 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> KitAPIServer:
        server = InProcessAPIServer(self.config)
        self.kit_loop.run(server.__aenter__())
        self.server, self.url, self.port = server, server.url, server.port
        return self

    def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            self.kit_loop.run(server.stop())

    def __enter__(self) -> KitAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> APIServer:
        if self.server is None:
            raise RuntimeError("the fixture apiserver is not running")
        return self.server

    @property
    def ca_pem(self) -> bytes:
        return self.pki.ca_pem

    @property
    def owns_token_file(self) -> bool:
        return self.config.token_auth_file == str(self.token_file)

    def __repr__(self) -> str:
        return f"<KitAPIServer {self.url or '(stopped)'} {' '.join(self.flag_summary())}>"

    def flag_summary(self) -> list[str]:
        keys = ("--authorization-mode", "--anonymous-auth", "--enable-bootstrap-token-auth")
        return to_argv({k: self.flags[k] for k in keys if k in self.flags})

    # -- identities ----------------------------------------------------------------------------------
    @functools.cached_property
    def admin(self) -> Identity:
        """``kubernetes-admin`` in ``system:masters``: a client certificate as in admin.conf, or a
        token-file user when the server runs without ``--client-ca-file``."""
        via = "token" if not self.config.client_ca_file and self.owns_token_file else "cert"
        return self.as_user("kubernetes-admin", groups=["system:masters"], via=via)

    @functools.cached_property
    def anonymous(self) -> Identity:
        """No credential at all (the CA is still verified)."""
        return Identity(self, "anonymous", username="system:anonymous", groups=("system:unauthenticated",),
                        authenticator="anonymous")

    def as_user(self, name: str, groups: Sequence[str] = (), *, via: str = "cert", uid: str | None = None
                ) -> Identity:
        """A user by client certificate (``via="cert"``) or static token file (``via="token"``)."""
        if via == "cert":
            return Identity(self, name, username=name, groups=groups, authenticator="x509",
                            cert=self.pki.client_cert(name, groups))
        if via == "token":
            token = self.token_for(name, groups, uid if uid is not None else f"uid-{name}")
            return Identity(self, f"{name} (token)", username=name, groups=groups, authenticator="token-file",
                            token=token)
        raise ValueError(f"via must be 'cert' or 'token' (service accounts: as_service_account(), bootstrap "
                         f"tokens: as_bootstrap_token(), no credential: .anonymous), not {via!r}")

    def as_node(self, node: str) -> Identity:
        """A kubelet's client certificate: ``system:node:<node>`` in ``system:nodes``."""
        return self.as_user(f"system:node:{node}", groups=["system:nodes"])

    def with_token(self, token: str, label: str = "bearer token") -> Identity:
        return Identity(self, label, token=token)

    def with_cert(self, cert: CertPair, label: str = "client certificate") -> Identity:
        return Identity(self, label, cert=cert)

    def as_service_account(self, name: str = "default", namespace: str = "default", *, pod: str | None = None,
                           node: str | None = None, audiences: Sequence[str] | None = None,
                           expiration_seconds: int = 3600) -> Identity:
        """A TokenRequest token for ``namespace/name`` (created if missing), bound to ``pod`` if given
        (the pod is created, on ``node`` if given); ``audiences`` default to the API's."""
        self.ensure_namespace(namespace)
        self.ensure_service_account(namespace, name)
        spec: Obj = {"expirationSeconds": expiration_seconds}
        if audiences is not None:
            spec["audiences"] = list(audiences)
        if pod is not None:
            if node:
                self.create(objects.node(node), exist_ok=True)
            bound = self.create(objects.pod(namespace, pod, service_account=name, node=node), exist_ok=True)
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod,
                                      "uid": bound["metadata"]["uid"]}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        resp = self.admin.sync.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body)
        if resp.status != 201:
            raise SetupError(f"TokenRequest for {namespace}/{name}", resp)
        label = f"system:serviceaccount:{namespace}:{name}" + (f" (pod {pod})" if pod else "")
        return Identity(self, label, username=f"system:serviceaccount:{namespace}:{name}",
                        groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
                        authenticator="service-account", token=resp.json["status"]["token"])

    def as_bootstrap_token(self, token_id: str | None = None, *,
                           extra_groups: Sequence[str] = (objects.DEFAULT_NODE_TOKEN_GROUP,),
                           expires_in: float | None = 3600.0, usage_authentication: bool = True) -> Identity:
        """A bootstrap token ``<id>.<secret>`` and its Secret in kube-system (``expires_in`` seconds,
        negative for one that has already expired, None for no expiry)."""
        token = make_bootstrap_token()
        token_id = token_id or token.token_id
        expiration = None if expires_in is None else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)
        self.create(objects.bootstrap_token_secret(token_id, token.secret, extra_groups=extra_groups,
                                                   expiration=expiration, usage_authentication=usage_authentication))
        return Identity(self, f"system:bootstrap:{token_id}", username=f"system:bootstrap:{token_id}",
                        groups=("system:bootstrappers", *extra_groups), authenticator="bootstrap-token",
                        token=f"{token_id}.{token.secret}")

    def bad_credential(self, case: str) -> Identity:
        """An identity from the bad-credential catalogue (:data:`miniapi.testing.BAD_CREDENTIALS`)."""
        from miniapi.testing.badcreds import catalogue_case

        return catalogue_case(case).make(self)

    # -- the token file --------------------------------------------------------------------------------
    def token_for(self, name: str, groups: Sequence[str], uid: str) -> str:
        """A token-file token for ``name`` (added to the kit's file; looked up in a file of your own)."""
        if not self.config.token_auth_file:
            return secrets.token_hex(16)  # no --token-auth-file: nobody will claim it (a 401)
        if not self.owns_token_file:
            return token_of(self.config.token_auth_file, name)
        token = self._tokens.add(name, groups, uid)
        self._reload_token_file()
        return token

    def revoke_token(self, token: str) -> None:
        """Remove a token from the kit's token file (and reload it, as a restart would)."""
        if self._tokens.remove(token):
            self._reload_token_file()

    def _reload_token_file(self) -> None:
        if self.server is not None:
            self.kit_loop.run(reload_token_file(self.server, self.token_file))

    # -- setup, as kubernetes-admin --------------------------------------------------------------------
    def create(self, obj: Obj, *, exist_ok: bool = False) -> Obj:
        """Create ``obj``; with ``exist_ok`` an existing object is returned unchanged. A Pod's
        ServiceAccount is created first if missing (no controller is trusted to have done it)."""
        if obj.get("kind") == "Pod" and obj.get("apiVersion") == "v1":
            namespace = str(obj["metadata"].get("namespace") or "default")
            self.ensure_service_account(namespace, str((obj.get("spec") or {}).get("serviceAccountName") or "default"))
        resp = self.admin.sync.post(objects.collection_path(obj), obj)
        if resp.status == 409 and exist_ok:
            return self._get_or_fail(objects.object_path(obj))
        if not resp.ok:
            raise SetupError(f"create {obj.get('kind')} {obj['metadata'].get('name')}", resp)
        self.synced()
        result: Obj = resp.json
        return result

    def apply(self, obj: Obj) -> Obj:
        """Create ``obj`` or replace the existing one (PUT with its resourceVersion)."""
        current = self.admin.sync.get(objects.object_path(obj))
        if current.status == 404:
            return self.create(obj)
        meta = {**obj["metadata"], "resourceVersion": current.json["metadata"]["resourceVersion"]}
        resp = self.admin.sync.put(objects.object_path(obj), {**obj, "metadata": meta})
        if not resp.ok:
            raise SetupError(f"replace {obj.get('kind')} {obj['metadata'].get('name')}", resp)
        self.synced()
        result: Obj = resp.json
        return result

    def delete(self, obj: Obj, *, missing_ok: bool = True) -> None:
        """Delete ``obj`` (at once: gracePeriodSeconds=0)."""
        resp = self.admin.sync.delete(objects.object_path(obj), params={"gracePeriodSeconds": "0"})
        if not resp.ok and not (resp.status == 404 and missing_ok):
            raise SetupError(f"delete {obj.get('kind')} {obj['metadata'].get('name')}", resp)
        self.synced()

    def ensure_namespace(self, name: str) -> Obj:
        return self.create(objects.namespace(name), exist_ok=True)

    def ensure_service_account(self, namespace: str, name: str) -> Obj:
        return self.create(objects.service_account(namespace, name), exist_ok=True)

    def _get_or_fail(self, path: str) -> Obj:
        resp = self.admin.sync.get(path)
        if not resp.ok:
            raise SetupError(f"get {path}", resp)
        result: Obj = resp.json
        return result

    def synced(self, timeout: float = 5.0) -> None:
        """Wait until the RBAC and Node authorizers' indexes match the store."""
        self.kit_loop.run(self.running.authz_indexes.synced(timeout))

    # -- audit -------------------------------------------------------------------------------------------
    def audit_snapshot(self) -> list[Obj]:
        async def snapshot() -> list[Obj]:
            return list(self.running.audit.events)

        return self.kit_loop.run(snapshot())


@contextlib.contextmanager
def start_apiserver(*argv: str, pki: ClusterPKI | None = None, kit_loop: KitLoop | None = None,
                    **flags: Any) -> Iterator[KitAPIServer]:
    """A fixture apiserver outside pytest (scripts, benchmarks); PKI and files in a temp directory."""
    with tempfile.TemporaryDirectory(prefix="miniapi-kit-") as tmp:
        pki = pki or make_cluster_pki(Path(tmp) / "pki")
        with KitAPIServer(pki, kit_loop or shared_loop(), Path(tmp) / "server", flags, argv) as api:
            yield api
