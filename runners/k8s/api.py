"""The few Kubernetes API calls a sandbox needs, over plain HTTPS with httpx.

In a pod the defaults are the in-cluster ones: the API at ``KUBERNETES_SERVICE_HOST`` /
``KUBERNETES_SERVICE_PORT``, the service account's token, CA and namespace under
``/var/run/secrets/kubernetes.io/serviceaccount``. Each is a setting
(``ALPHAFORGE_SANDBOX_K8S_<FIELD>``) so tests and out-of-cluster launchers can point elsewhere.
The token file is read for every request: the kubelet rotates projected tokens.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from runners.jobs import SandboxFailure

__all__ = ["SA_DIR", "KubeApi", "KubeApiError", "KubernetesSettings"]

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubernetesSettings(BaseSettings):
    """Where the API is, who we are, and where the sandbox pods' job directories live."""

    model_config = SettingsConfigDict(env_prefix="ALPHAFORGE_SANDBOX_K8S_", extra="ignore")

    api_url: str = ""  # default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
    token: str = ""  # default: the service account's token file
    token_file: Path = SA_DIR / "token"
    ca_file: Path = SA_DIR / "ca.crt"
    namespace: str = ""  # default: the service account's namespace
    # The ReadWriteMany claim the job directories are on, and where this pod mounts it
    # (infra/k8s: alphaforge-state at ALPHAFORGE_DATA_DIR).
    claim: str = "alphaforge-state"
    claim_mount: Path = Path("/var/lib/alphaforge")
    poll_s: float = 0.1
    # Scheduling and pulling the image, before the wall time starts counting.
    start_timeout_s: float = 120.0
    # How long past its wall time a pod may exist (activeDeadlineSeconds), should this
    # launcher die before deleting it.
    grace_s: float = 30.0

    def resolved_url(self) -> str:
        """The API's base URL (in-cluster unless ``api_url`` is set)."""
        if self.api_url:
            return self.api_url.rstrip("/")
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeApiError(
                "no Kubernetes API: not in a pod (KUBERNETES_SERVICE_HOST unset) and "
                "ALPHAFORGE_SANDBOX_K8S_API_URL not set"
            )
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{port}"

    def resolved_namespace(self) -> str:
        """The namespace sandbox pods go in (this pod's own, unless set)."""
        if self.namespace:
            return self.namespace
        try:
            return (SA_DIR / "namespace").read_text().strip()
        except OSError:
            raise KubeApiError(
                f"no namespace: {SA_DIR / 'namespace'} is unreadable and "
                "ALPHAFORGE_SANDBOX_K8S_NAMESPACE not set"
            ) from None


class KubeApiError(SandboxFailure):
    """The Kubernetes API refused or did not answer: no sandbox can run."""

    def __init__(self, message: str) -> None:
        super().__init__("SANDBOX_UNAVAILABLE", message)


class KubeApi:
    """Pods and their logs in one namespace."""

    def __init__(self, settings: KubernetesSettings | None = None) -> None:
        self.settings = settings or KubernetesSettings()
        self.base = self.settings.resolved_url()
        self.namespace = self.settings.resolved_namespace()
        verify: ssl.SSLContext | bool = True
        if self.base.startswith("https://") and self.settings.ca_file.exists():
            verify = ssl.create_default_context(cafile=str(self.settings.ca_file))
        self.http = httpx.Client(base_url=self.base, verify=verify, timeout=30.0)

    def _headers(self) -> dict[str, str]:
        token = self.settings.token
        if not token:
            try:
                token = self.settings.token_file.read_text().strip()
            except OSError:
                token = ""
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _pods(self, name: str = "") -> str:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        return f"{path}/{name}" if name else path

    def _call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            return self.http.request(method, url, headers=self._headers(), **kw)
        except httpx.HTTPError as exc:
            raise KubeApiError(f"the Kubernetes API at {self.base} did not answer: {exc}") from None

    @staticmethod
    def _check(resp: httpx.Response, what: str) -> None:
        if resp.status_code >= 400:
            detail = resp.text[:300]
            raise KubeApiError(f"{what}: the Kubernetes API answered {resp.status_code}: {detail}")

    def create_pod(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create a pod; returns the API's copy."""
        resp = self._call("POST", self._pods(), json=manifest)
        self._check(resp, f"creating pod {manifest['metadata']['name']}")
        return dict(resp.json())

    def get_pod(self, name: str) -> dict[str, Any] | None:
        """The pod, or None once it is gone."""
        resp = self._call("GET", self._pods(name))
        if resp.status_code == 404:
            return None
        self._check(resp, f"reading pod {name}")
        return dict(resp.json())

    def delete_pod(self, name: str, grace_s: int = 1) -> bool:
        """Delete a pod (its containers get ``grace_s`` after SIGTERM); False if already gone.

        Not 0: the API treats 0 as a forced delete, which drops the object before the kubelet
        has stopped the containers, so "gone" would no longer mean "stopped".
        """
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace_s}
        resp = self._call("DELETE", self._pods(name), json=body)
        if resp.status_code == 404:
            return False
        self._check(resp, f"deleting pod {name}")
        return True

    def list_pods(self, selector: str) -> list[dict[str, Any]]:
        """Pods matching a label selector."""
        resp = self._call("GET", self._pods(), params={"labelSelector": selector})
        self._check(resp, f"listing pods {selector}")
        return list(resp.json().get("items") or [])

    def read_log(self, name: str, container: str, limit_bytes: int) -> bytes:
        """The container's log so far, at most ``limit_bytes``."""
        params = {"container": container, "limitBytes": str(limit_bytes)}
        resp = self._call("GET", self._pods(name) + "/log", params=params)
        if resp.status_code == 404:
            return b""
        self._check(resp, f"reading the log of pod {name}")
        return resp.content[:limit_bytes]

    @contextmanager
    def follow_log(self, name: str, container: str, limit_bytes: int) -> Iterator[Iterator[bytes]]:
        """The container's log as it is written (ends when the container does), at most
        ``limit_bytes``."""
        params = {"container": container, "follow": "true", "limitBytes": str(limit_bytes)}
        request = self.http.build_request(
            "GET", self._pods(name) + "/log", params=params, headers=self._headers(),
            timeout=httpx.Timeout(30.0, read=None),
        )  # fmt: skip
        try:
            resp = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise KubeApiError(f"following the log of pod {name}: {exc}") from None
        try:
            if resp.status_code >= 400:
                resp.read()
            self._check(resp, f"following the log of pod {name}")
            yield resp.iter_raw()
        finally:
            resp.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()
