"""Admission: what runs after authorization and before a write is stored (k8s.io/apiserver/pkg/admission).

Authorization answers "may this user do this verb on this resource?"; admission sees the object itself
(and the stored one on update/delete) and may still refuse with ``403 Forbidden``. The REST handlers call
:meth:`Admission.admit` once per create, update, patch and delete (and the TokenRequest handler for
``serviceaccounts/token``), before the strategy's defaults and validation run, as the real mutating
admission phase does.

Plugins (``--enable-admission-plugins`` / ``--disable-admission-plugins``, real names and defaults):

1. ``NamespaceLifecycle`` and ``ServiceAccount`` are on by default, as in kube-apiserver; they live in
   the REST handlers and the pod strategy and cannot be switched off here.
2. ``NodeRestriction`` is NOT in the real default list; kubeadm (and ``minilab``) enable it. It limits
   what a kubelet (``system:node:NAME`` in ``system:nodes``) may write to its own objects
   (:mod:`miniapi.admission.noderestriction`).
3. Every other real plugin name is accepted (so a flag copied from a kubeadm manifest parses) but has
   nothing to act on here: the apiserver warns at start that it is not implemented.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from miniapi.admission import noderestriction
from miniapi.admission.attributes import Attributes, Operation

if TYPE_CHECKING:
    from miniapi.store.base import Store

# kube-apiserver's default-on plugins (pkg/kubeapiserver/options/plugins.go DefaultOffAdmissionPlugins
# is the complement): what runs with no --enable/--disable flag.
DEFAULT_ON = ("NamespaceLifecycle", "LimitRanger", "ServiceAccount", "TaintNodesByCondition", "PodSecurity",
              "Priority", "DefaultTolerationSeconds", "DefaultStorageClass", "StorageObjectInUseProtection",
              "PersistentVolumeClaimResize", "RuntimeClass", "CertificateApproval", "CertificateSigning",
              "ClusterTrustBundleAttest", "CertificateSubjectRestriction", "DefaultIngressClass",
              "MutatingAdmissionWebhook", "ValidatingAdmissionPolicy",
              "ValidatingAdmissionWebhook", "ResourceQuota")
DEFAULT_OFF = ("AlwaysAdmit", "MutatingAdmissionPolicy", "AlwaysDeny", "AlwaysPullImages", "DenyServiceExternalIPs",
               "EventRateLimit", "ExtendedResourceToleration", "ImagePolicyWebhook", "LimitPodHardAntiAffinityTopology",
               "NamespaceAutoProvision", "NamespaceExists", "NodeRestriction", "OwnerReferencesPermissionEnforcement",
               "PodNodeSelector", "PodTolerationRestriction", "PodTopologyLabels")
KNOWN = frozenset(DEFAULT_ON + DEFAULT_OFF)
IMPLEMENTED = ("NamespaceLifecycle", "ServiceAccount", "NodeRestriction")
BUILT_IN = ("NamespaceLifecycle", "ServiceAccount")  # always on here

__all__ = ["Admission", "Attributes", "Operation", "effective_plugins"]


def effective_plugins(enable: tuple[str, ...], disable: tuple[str, ...]) -> tuple[str, ...]:
    """The default-on plugins plus --enable-admission-plugins minus --disable-admission-plugins."""
    return tuple(name for name in sorted(set(DEFAULT_ON) | set(enable)) if name not in disable)


class Admission:
    """The admission chain of one apiserver: the implemented plugins of the effective list, in order."""

    def __init__(self, plugins: tuple[str, ...], store: Store) -> None:
        self.plugins = plugins
        self._node_restriction = noderestriction.NodeRestriction(store) if "NodeRestriction" in plugins else None

    async def admit(self, attrs: Attributes) -> None:
        """Raise an ApiError (403) when a plugin refuses."""
        if self._node_restriction is not None:
            await self._node_restriction.admit(attrs)
