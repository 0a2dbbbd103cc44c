"""miniapi: a small, faithful async Kubernetes apiserver for teaching control plane <-> node paths."""

__all__ = ["__version__"]
__version__ = "0.1.0"
