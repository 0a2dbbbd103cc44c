"""Strategies of the core (``v1``) kinds: namespaces, nodes, pods, services, secrets and friends.

Rules, in the order the real registry applies them:

1. Namespaces are DNS labels; ``default``, ``kube-system``, ``kube-public`` and ``kube-node-lease``
   may not be deleted; deleting a namespace deletes everything in it (the namespace controller's work,
   done inline here).
2. Pods need containers with a name and an image; defaults follow the real ones (restartPolicy Always,
   dnsPolicy ClusterFirst, terminationGracePeriodSeconds 30, serviceAccountName default, imagePullPolicy
   by tag). The ServiceAccount admission plugin then checks the service account exists and adds the
   ``kube-api-access-*`` token volume (registry/serviceaccount.py). A pod bound to a node is deleted
   gracefully (its kubelet finishes the job); an unbound pod at once.
3. Services get a ClusterIP from ``--service-cluster-ip-range`` unless ``clusterIP: None``.
4. Secrets: ``stringData`` is folded into base64 ``data``; every ``data`` value must be base64.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
from typing import Any

from miniapi import errors
from miniapi.registry.base import Cause, Ctx, Obj, Strategy, cause, invalid_value, name_rule_label, required
from miniapi.registry.serviceaccount import mount_service_account_token
from miniapi.store import NotFound

DEFAULT_SA_RETRIES = 10
DEFAULT_SA_RETRY_INTERVAL = 0.1
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class NamespaceStrategy(Strategy):
    name_rule = staticmethod(name_rule_label)
    has_status = True

    async def prepare_create(self, ctx: Ctx, obj: Obj) -> None:
        await super().prepare_create(ctx, obj)
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        labels = obj["metadata"].setdefault("labels", {})
        if isinstance(labels, dict):
            labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Active"}

    async def after_delete(self, ctx: Ctx, obj: Obj) -> None:
        await ctx.server.bootstrap.empty_namespace(obj["metadata"]["name"])


class NodeStrategy(Strategy):
    has_status = True

    async def prepare_create(self, ctx: Ctx, obj: Obj) -> None:
        obj.setdefault("spec", {})
        obj.setdefault("status", {})  # kubelets register their Node with its status


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


class PodStrategy(Strategy):
    has_status = True

    async def prepare_create(self, ctx: Ctx, obj: Obj) -> None:
        await super().prepare_create(ctx, obj)
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = spec["serviceAccount"] = sa
        for container in spec.get("containers") or []:
            if isinstance(container, dict) and isinstance(container.get("image"), str):
                container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                container.setdefault("resources", {})
        if isinstance(sa, str):
            account = await self._admit_service_account(ctx, obj, sa)
            mount_service_account_token(obj, account)

    async def _admit_service_account(self, ctx: Ctx, obj: Obj, sa: str) -> Obj | None:
        """The ServiceAccount admission plugin: the pod's service account must exist. The ``default`` one
        is waited for briefly (10 x 100 ms, as the real plugin does), since the controller-manager
        creates it just after the namespace. A dry run only looks once and does not insist."""
        ns = obj["metadata"].get("namespace", "")
        for attempt in range(DEFAULT_SA_RETRIES if sa == "default" and not ctx.dry_run else 1):
            if attempt:
                await asyncio.sleep(DEFAULT_SA_RETRY_INTERVAL)
            try:
                account: Obj = await ctx.server.store.get("serviceaccounts", ns, sa)
                return account
            except NotFound:
                continue
        if ctx.dry_run:
            return None
        raise errors.forbidden(
            f'pods "{obj["metadata"].get("name") or obj["metadata"].get("generateName", "")}" is '
            f'forbidden: error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found',
            "pods", obj["metadata"].get("name", ""))

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending", "qosClass": "BestEffort"}

    def validate(self, obj: Obj) -> list[Cause]:
        causes = self.validate_metadata(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            return causes + [required("spec.containers")]
        seen: set[str] = set()
        for i, c in enumerate(containers):
            path = f"spec.containers[{i}]"
            if not isinstance(c, dict):
                causes.append(invalid_value(path, str(c), "must be an object"))
                continue
            name = c.get("name")
            if not isinstance(name, str) or not name:
                causes.append(required(f"{path}.name"))
            elif (why := name_rule_label(name)) is not None:
                causes.append(invalid_value(f"{path}.name", name, why))
            elif name in seen:
                causes.append(cause(f"{path}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
            else:
                seen.add(name)
            if not isinstance(c.get("image"), str) or not c.get("image"):
                causes.append(required(f"{path}.image"))
        policy = spec.get("restartPolicy")
        if policy not in (None, "Always", "OnFailure", "Never"):
            causes.append(cause("spec.restartPolicy", f'Unsupported value: "{policy}": supported values: '
                                '"Always", "OnFailure", "Never"', "FieldValueNotSupported"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        if _pod_spec_core(new) != _pod_spec_core(old):
            causes.append(cause("spec", "Forbidden: pod updates may not change fields other than "
                                "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                                "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                                "existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to "
                                "be set to 1 if it was previously negative)", "FieldValueForbidden"))
        return causes

    def graceful(self, obj: Obj, grace_seconds: int | None) -> bool:
        return bool(obj.get("spec", {}).get("nodeName")) and grace_seconds != 0 and \
            obj.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def _pod_spec_core(pod: Obj) -> Any:
    spec = dict(pod.get("spec") or {})
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(key, None)
    spec["containers"] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []
                          if isinstance(c, dict)]
    spec["initContainers"] = [{k: v for k, v in c.items() if k != "image"}
                              for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    return spec


class ServiceStrategy(Strategy):
    has_status = True

    async def prepare_create(self, ctx: Ctx, obj: Obj) -> None:
        await super().prepare_create(ctx, obj)
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
        if spec.get("clusterIP") != "None" and not ctx.dry_run:
            spec["clusterIP"] = await ctx.server.allocate_cluster_ip(obj, spec.get("clusterIP") or "")
        if spec.get("clusterIP"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")

    def initial_status(self, obj: Obj) -> Obj:
        return {"loadBalancer": {}}

    def validate(self, obj: Obj) -> list[Cause]:
        causes = self.validate_metadata(obj)
        name = obj.get("metadata", {}).get("name")
        if isinstance(name, str) and name_rule_label(name) and not causes:
            causes.append(invalid_value("metadata.name", name, "a DNS-1035 label must consist of lower "
                                        "case alphanumeric characters or '-', start with an alphabetic "
                                        "character, and end with an alphanumeric character"))
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        for i, port in enumerate(spec.get("ports") or []):
            value = port.get("port") if isinstance(port, dict) else None
            if not isinstance(value, int) or not 0 < value < 65536:
                causes.append(invalid_value(f"spec.ports[{i}].port", value, "must be between 1 and 65535, "
                                            "inclusive"))
        ip = spec.get("clusterIP")
        if ip not in (None, "", "None"):
            try:
                ipaddress.ip_address(ip)
            except (ValueError, TypeError):
                causes.append(invalid_value("spec.clusterIP", ip, "must be a valid IP address"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        old_ip = old.get("spec", {}).get("clusterIP")
        new_ip = new.get("spec", {}).get("clusterIP")
        if new_ip in (None, ""):
            new.setdefault("spec", {})["clusterIP"] = old_ip
            if old.get("spec", {}).get("clusterIPs"):
                new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"]
        elif new_ip != old_ip:
            causes.append(cause("spec.clusterIP", "Invalid value: field is immutable"))
        return causes


class SecretStrategy(Strategy):
    async def prepare_create(self, ctx: Ctx, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        _fold_string_data(obj)

    async def prepare_update(self, ctx: Ctx, new: Obj, old: Obj) -> None:
        new.setdefault("type", old.get("type", "Opaque"))
        _fold_string_data(new)

    def validate(self, obj: Obj) -> list[Cause]:
        causes = self.validate_metadata(obj)
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            return causes + [invalid_value("data", "", "must be a map")]
        for key, value in data.items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                causes.append(invalid_value(f"data[{key}]", "<secret contents redacted>",
                                            "illegal base64 data"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        if new.get("type") != old.get("type"):
            causes.append(cause("type", "Invalid value: field is immutable"))
        if old.get("immutable") and (new.get("data") != old.get("data")):
            causes.append(cause("data", "Forbidden: field is immutable when `immutable` is set",
                                "FieldValueForbidden"))
        return causes


def _fold_string_data(obj: Obj) -> None:
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        causes = self.validate_metadata(obj)
        data = obj.get("data")
        if data is not None and (not isinstance(data, dict) or
                                 not all(isinstance(v, str) for v in data.values())):
            causes.append(invalid_value("data", "", "must be a map of strings"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        if old.get("immutable") and (new.get("data") != old.get("data")):
            causes.append(cause("data", "Forbidden: field is immutable when `immutable` is set",
                                "FieldValueForbidden"))
        return causes
