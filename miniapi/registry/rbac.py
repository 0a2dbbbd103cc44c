"""RBAC kinds (rbac.authorization.k8s.io/v1) with escalation prevention.

1. A Role/ClusterRole may be written only by someone who already holds every permission it grants, or
   who has the ``escalate`` verb on roles/clusterroles.
2. A RoleBinding/ClusterRoleBinding may be written only by someone who holds every permission of the
   referenced role, or who has the ``bind`` verb on that role.
3. ``roleRef`` is immutable; names are path segments (``system:node`` is fine).
"""

from __future__ import annotations

from miniapi import errors
from miniapi.authz.escalation import check_escalation
from miniapi.registry.base import Cause, Ctx, Obj, Strategy, cause, name_rule_path_segment, required


class RBACStrategy(Strategy):
    name_rule = staticmethod(name_rule_path_segment)

    async def prepare_create(self, ctx: Ctx, obj: Obj) -> None:
        await self._escalation(ctx, obj, None)

    async def prepare_update(self, ctx: Ctx, new: Obj, old: Obj) -> None:
        await self._escalation(ctx, new, old)

    async def _escalation(self, ctx: Ctx, obj: Obj, old: Obj | None) -> None:
        if self.validate(obj):
            return  # validation reports the shape problem with a 422
        message = await check_escalation(ctx.server.store, ctx.server.authorizer, ctx.user, obj,
                                         self.rt.kind, old=old)
        if message:
            raise errors.forbidden(message, self.rt.resource, obj.get("metadata", {}).get("name", ""),
                                   self.rt.group)

    def validate(self, obj: Obj) -> list[Cause]:
        causes = self.validate_metadata(obj)
        if self.rt.kind.endswith("Binding"):
            ref = obj.get("roleRef")
            if not isinstance(ref, dict) or not ref.get("name") or not ref.get("kind"):
                causes.append(required("roleRef"))
            elif ref["kind"] not in ("Role", "ClusterRole") or (
                    self.rt.kind == "ClusterRoleBinding" and ref["kind"] != "ClusterRole"):
                causes.append(cause("roleRef.kind", f'Unsupported value: "{ref["kind"]}"',
                                    "FieldValueNotSupported"))
            subjects = obj.get("subjects") or []
            if not isinstance(subjects, list):
                causes.append(cause("subjects", "Invalid value: must be a list"))
            else:
                for i, s in enumerate(subjects):
                    if not isinstance(s, dict) or s.get("kind") not in ("User", "Group", "ServiceAccount") \
                            or not s.get("name"):
                        causes.append(cause(f"subjects[{i}]", "Invalid value: need kind User, Group or "
                                            "ServiceAccount and a name"))
                    elif s["kind"] == "ServiceAccount" and not s.get("namespace") and \
                            self.rt.kind == "ClusterRoleBinding":
                        causes.append(required(f"subjects[{i}].namespace"))
        else:
            rules = obj.get("rules") or []
            if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
                causes.append(cause("rules", "Invalid value: must be a list of PolicyRules"))
            else:
                for i, rule in enumerate(rules):
                    if not rule.get("verbs"):
                        causes.append(required(f"rules[{i}].verbs"))
                    if not rule.get("nonResourceURLs") and not rule.get("resources"):
                        causes.append(required(f"rules[{i}].resources"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        if self.rt.kind.endswith("Binding") and new.get("roleRef") != old.get("roleRef"):
            causes.append(cause("roleRef", "Invalid value: cannot change roleRef"))
        return causes
