"""CertificateSigningRequest strategy (certificates.k8s.io/v1): the apiserver half of TLS bootstrapping.

1. On create the apiserver records who asked: ``spec.username``, ``uid``, ``groups``, ``extra`` come
   from the authenticated user, never from the body; ``status`` starts empty.
2. ``spec.request`` must be a PEM ``CERTIFICATE REQUEST`` whose signature verifies; ``signerName`` and
   ``usages`` are required; the spec is immutable afterwards.
3. The ``/approval`` subresource only changes ``status.conditions`` (Approved / Denied, never both; an
   existing Approved or Denied condition cannot be removed), and needs, besides RBAC on
   ``certificatesigningrequests/approval``, the verb ``approve`` on ``signers`` named by the signerName
   (or its ``domain/*`` wildcard), as in the real CertificateSubjectRestriction/approval checks.
4. The ``/status`` subresource (the signer's) may set ``status.certificate`` (PEM CERTIFICATE).
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509

from miniapi import errors
from miniapi.authz.base import Attributes, Decision
from miniapi.registry.base import Cause, Ctx, Obj, Strategy, cause, name_rule_path_segment, required

KNOWN_USAGES = {
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
    "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
}


def _pem(obj: Obj, *path: str) -> bytes | None:
    value: object = obj
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


class CSRStrategy(Strategy):
    name_rule = staticmethod(name_rule_path_segment)
    has_status = True

    async def prepare_create(self, ctx: Ctx, obj: Obj) -> None:
        await super().prepare_create(ctx, obj)
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        user = ctx.user
        spec["username"] = user.name
        spec["uid"] = user.uid
        spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        else:
            spec.pop("extra", None)

    def validate(self, obj: Obj) -> list[Cause]:
        causes = self.validate_metadata(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        raw = _pem(obj, "spec", "request")
        if raw is None:
            causes.append(required("spec.request"))
        else:
            try:
                csr = x509.load_pem_x509_csr(raw)
                if not csr.is_signature_valid:
                    causes.append(cause("spec.request", "Invalid value: []byte{...}: invalid signature"))
            except ValueError:
                causes.append(cause("spec.request", "Invalid value: []byte{...}: PEM block type must be "
                                    "CERTIFICATE REQUEST"))
        if not isinstance(spec.get("signerName"), str) or not spec.get("signerName"):
            causes.append(required("spec.signerName"))
        usages = spec.get("usages")
        if not isinstance(usages, list) or not usages:
            causes.append(required("spec.usages"))
        else:
            for i, usage in enumerate(usages):
                if usage not in KNOWN_USAGES:
                    causes.append(cause(f"spec.usages[{i}]", f'Unsupported value: "{usage}"',
                                        "FieldValueNotSupported"))
        exp = spec.get("expirationSeconds")
        if exp is not None and (not isinstance(exp, int) or exp < 600):
            causes.append(cause("spec.expirationSeconds", f"Invalid value: {exp}: may not specify a "
                                "duration less than 600 seconds (10 minutes)"))
        return causes + _validate_conditions(obj)

    async def prepare_update(self, ctx: Ctx, new: Obj, old: Obj) -> None:
        await super().prepare_update(ctx, new, old)
        new["spec"] = old.get("spec", {})

    async def prepare_status_update(self, ctx: Ctx, new: Obj, old: Obj) -> None:
        await super().prepare_status_update(ctx, new, old)
        cert = _pem(new, "status", "certificate")
        if cert == b"" or (cert and b"-----BEGIN CERTIFICATE-----" not in cert):
            raise errors.invalid("CertificateSigningRequest", old["metadata"]["name"],
                                 [cause("status.certificate", "Invalid value: \"<certificate data>\": "
                                        "must contain at least one CERTIFICATE PEM block")], "certificates.k8s.io")

    async def prepare_approval(self, ctx: Ctx, new: Obj, old: Obj) -> None:
        """Only conditions change through /approval; the approver needs `approve` on the signer."""
        conditions = (new.get("status") or {}).get("conditions") or []
        status = dict(old.get("status") or {})
        status["conditions"] = conditions
        new.clear()
        new.update({k: v for k, v in old.items() if k != "status"})
        new["status"] = status
        signer = old.get("spec", {}).get("signerName", "")
        await _check_signer_permission(ctx, signer, "approve")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = _validate_conditions(new)
        old_types = {c.get("type") for c in (old.get("status") or {}).get("conditions") or []}
        new_types = {c.get("type") for c in (new.get("status") or {}).get("conditions") or []
                     if isinstance(c, dict)}
        for kept in ("Approved", "Denied"):
            if kept in old_types and kept not in new_types:
                causes.append(cause("status.conditions", f"Forbidden: updates may not remove a condition "
                                    f"of type \"{kept}\"", "FieldValueForbidden"))
        return causes


def _validate_conditions(obj: Obj) -> list[Cause]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    if not isinstance(conditions, list):
        return [cause("status.conditions", "Invalid value: must be a list")]
    causes: list[Cause] = []
    types = []
    for i, cond in enumerate(conditions):
        if not isinstance(cond, dict) or not cond.get("type"):
            causes.append(required(f"status.conditions[{i}].type"))
            continue
        types.append(cond["type"])
        if cond.get("status", "True") not in ("True", "False", "Unknown"):
            causes.append(cause(f"status.conditions[{i}].status", "Unsupported value", "FieldValueNotSupported"))
        cond.setdefault("status", "True")
    if "Approved" in types and "Denied" in types:
        causes.append(cause("status.conditions", "Invalid value: Approved and Denied conditions are "
                            "mutually exclusive"))
    if len(types) != len(set(types)):
        causes.append(cause("status.conditions", "Duplicate value: condition types must be unique",
                            "FieldValueDuplicate"))
    return causes


async def _check_signer_permission(ctx: Ctx, signer: str, verb: str) -> None:
    names = [signer]
    if "/" in signer:
        names.append(signer.split("/", 1)[0] + "/*")
    for name in names:
        attrs = Attributes(user=ctx.user, verb=verb, api_group="certificates.k8s.io", api_version="*",
                           resource="signers", name=name)
        decision, _ = await ctx.server.authorizer.authorize(attrs)
        if decision is Decision.ALLOW:
            return
    raise errors.forbidden(f'certificatesigningrequests.certificates.k8s.io "{ctx.info.name}" is '
                           f'forbidden: user not permitted to {verb} requests with signerName "{signer}"',
                           "certificatesigningrequests", ctx.info.name, "certificates.k8s.io")
