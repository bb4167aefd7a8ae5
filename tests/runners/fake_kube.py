"""A small fake of the Kubernetes API for the sandbox-pod executor's tests.

A real HTTP server on 127.0.0.1 that keeps pods in memory and, acting as the kubelet, runs each
pod's one container in the local Docker engine: the pod's command in its image, its claim
``subPath`` mounts as bind mounts of ``claim_root/<subPath>``, its memory-backed ``emptyDir`` as a
tmpfs, its user, read-only root, dropped capabilities, memory and CPU limits. The pod status
follows the container (Running, then Succeeded/Failed with the exit code and ``OOMKilled``);
``activeDeadlineSeconds`` ends it as ``DeadlineExceeded``. DELETE removes the container, then the
pod. Logs (``follow``, ``limitBytes``) come from the container's. Only what the executor uses is
implemented; requests without the expected bearer token get 401.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from docker.errors import DockerException, ImageNotFound, NotFound
from docker.types import Mount

TOKEN = "fake-kube-token"
_POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?$")
_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def _bytes(quantity: str) -> int:
    for unit, factor in _UNITS.items():
        if quantity.endswith(unit):
            return int(quantity[: -len(unit)]) * factor
    return int(quantity)


def _cpus(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKube:
    """The fake API server and kubelet. ``url`` is its address; ``events`` what happened."""

    def __init__(self, client: Any, claim_root: Path, claim: str, namespace: str) -> None:
        self.client, self.claim_root, self.claim, self.namespace = (
            client,
            claim_root,
            claim,
            namespace,
        )
        self.pods: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, str] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.ended: dict[str, dict[str, Any]] = {}  # pod -> its container's terminated state
        self.lock = threading.Lock()
        self.kubelets: list[threading.Thread] = []
        self.admit: Any = None  # a mutating admission webhook: changes a pod as it is created
        self.evict = False  # the node "evicts" every pod before its container runs
        handler = type("Handler", (_Handler,), {"kube": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        for cid in list(self.containers.values()):
            with contextlib.suppress(DockerException):
                self.client.api.remove_container(cid, force=True)

    # -- the kubelet --------------------------------------------------------------------------

    def create(self, pod: dict[str, Any]) -> dict[str, Any]:
        name = pod["metadata"]["name"]
        pod = json.loads(json.dumps(pod))
        pod["metadata"]["namespace"] = self.namespace
        pod["status"] = {"phase": "Pending", "startTime": _now()}
        if self.admit is not None:
            self.admit(pod)
        with self.lock:
            self.pods[name] = pod
            self.created.append(json.loads(json.dumps(pod)))
        thread = threading.Thread(target=self._run, args=(name, pod), daemon=True)
        self.kubelets.append(thread)
        thread.start()
        return pod

    def settle(self, timeout: float = 20.0) -> None:
        """Wait for the kubelet's work on every pod to end (a deleted pod's container may
        still have been in creation)."""
        until = time.monotonic() + timeout
        for thread in self.kubelets:
            thread.join(max(0.0, until - time.monotonic()))

    def _mounts(self, spec: dict[str, Any], box: dict[str, Any]) -> tuple[list[Mount], dict]:
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts, tmpfs = [], {}
        for m in box["volumeMounts"]:
            volume = volumes[m["name"]]
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] == self.claim
                source = (self.claim_root / m["subPath"]).resolve()
                assert source.is_relative_to(self.claim_root.resolve()), m
                mounts.append(
                    Mount(
                        m["mountPath"], str(source), type="bind", read_only=m.get("readOnly", False)
                    )
                )
            else:
                size = _bytes(volume["emptyDir"]["sizeLimit"])
                tmpfs[m["mountPath"]] = f"rw,nosuid,nodev,size={size},mode=1777"
        return mounts, tmpfs

    def _run(self, name: str, pod: dict[str, Any]) -> None:
        spec = pod["spec"]
        (box,) = spec["containers"]
        if self.evict:
            with self.lock:
                message = "The node was low on resource: memory."
                pod["status"].update(phase="Failed", reason="Evicted", message=message)
            return
        mounts, tmpfs = self._mounts(spec, box)
        user = spec["securityContext"]
        limits = box["resources"]["limits"]
        memory = _bytes(limits["memory"])
        try:
            self.client.images.get(box["image"])
        except ImageNotFound:
            waiting = {"reason": "ErrImagePull", "message": f"pull {box['image']}: not found"}
            with self.lock:
                pod["status"]["containerStatuses"] = [
                    {"name": box["name"], "state": {"waiting": waiting}}
                ]
            return
        try:
            container = self.client.containers.create(
                image=box["image"],
                command=box["command"],
                user=f"{user['runAsUser']}:{user['runAsGroup']}",
                working_dir=box.get("workingDir"),
                environment={e["name"]: e["value"] for e in box.get("env", [])},
                labels={"alphaforge.fakekube": name},
                network_mode="none",
                network_disabled=True,
                read_only=box["securityContext"]["readOnlyRootFilesystem"],
                cap_drop=box["securityContext"]["capabilities"]["drop"],
                security_opt=["no-new-privileges"],
                mounts=mounts,
                tmpfs=tmpfs,
                mem_limit=memory,
                memswap_limit=memory,
                nano_cpus=int(_cpus(limits["cpu"]) * 1e9),
            )
        except DockerException as exc:  # e.g. the job dir is gone: the pod was deleted
            waiting = {"reason": "CreateContainerError", "message": str(exc)}
            with self.lock:
                pod["status"]["containerStatuses"] = [
                    {"name": box["name"], "state": {"waiting": waiting}}
                ]
            return
        with self.lock:
            if name not in self.pods:  # deleted while pending
                container.remove(force=True)
                return
            self.containers[name] = container.id
        try:
            container.start()
        except DockerException:  # deleted meanwhile
            return
        image_id = self.client.images.get(box["image"]).id
        with self.lock:
            pod["status"].update(
                phase="Running",
                containerStatuses=[
                    {
                        "name": box["name"],
                        "imageID": f"docker-pullable://{box['image']}@{image_id}",
                        "state": {"running": {"startedAt": _now()}},
                    }
                ],
            )
        deadline = spec.get("activeDeadlineSeconds")
        t0 = time.monotonic()
        exceeded = False
        while True:
            try:
                container.wait(timeout=0.2)
                break
            except NotFound:  # deleted
                return
            except Exception:  # the wait's timeout: still running
                if name not in self.pods:
                    return
                if deadline is not None and time.monotonic() - t0 > deadline:
                    exceeded = True
                    with contextlib.suppress(DockerException):
                        container.kill()
        try:
            state = self.client.api.inspect_container(container.id)["State"]
        except NotFound:
            return
        code, oom = state["ExitCode"], bool(state["OOMKilled"])
        reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        with self.lock:
            status = pod["status"]
            status["phase"] = "Succeeded" if code == 0 and not exceeded else "Failed"
            if exceeded:
                status["reason"] = "DeadlineExceeded"
            ended = {"exitCode": code, "reason": reason, "finishedAt": _now()}
            status["containerStatuses"][0]["state"] = {"terminated": ended}
            self.ended[name] = ended

    def delete(self, name: str) -> dict[str, Any] | None:
        with self.lock:  # atomically: _run registers a container only for a pod still here
            pod = self.pods.pop(name, None)
            cid = self.containers.pop(name, None)
            if pod is not None:
                pod["metadata"]["deletionTimestamp"] = _now()
                self.deleted.append(name)
        if cid is not None:  # answered once its container is stopped and removed
            with contextlib.suppress(DockerException):
                self.client.api.remove_container(cid, force=True)
        return pod

    def logs(self, name: str, follow: bool) -> Any:
        cid = self.containers.get(name)
        if cid is None:
            return None
        return self.client.api.logs(cid, stream=follow, follow=follow)


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, str | None, bool, dict[str, list[str]]] | None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"kind": "Status", "reason": "Unauthorized"})
            return None
        url = urlparse(self.path)
        match = _POD.match(url.path)
        if match is None or match.group(1) != self.kube.namespace:
            self._send(404, {"kind": "Status", "reason": "NotFound"})
            return None
        return match.group(1), match.group(2), bool(match.group(3)), parse_qs(url.query)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return dict(json.loads(self.rfile.read(length) or b"{}"))

    def do_POST(self) -> None:
        route = self._route()
        if route is None:
            return
        self._send(201, self.kube.create(self._body()))

    def do_DELETE(self) -> None:
        route = self._route()
        if route is None:
            return
        self._body()
        pod = self.kube.delete(str(route[1]))
        self._send(404 if pod is None else 200, pod or {"kind": "Status", "reason": "NotFound"})

    def do_GET(self) -> None:
        route = self._route()
        if route is None:
            return
        _, name, log, query = route
        if name is None:
            wanted = dict(kv.split("=", 1) for kv in query["labelSelector"][0].split(","))
            with self.kube.lock:
                items = [
                    p for p in self.kube.pods.values()
                    if wanted.items() <= p["metadata"]["labels"].items()
                ]  # fmt: skip
            self._send(200, {"kind": "PodList", "items": items})
            return
        with self.kube.lock:
            pod = self.kube.pods.get(name)
            pod = json.loads(json.dumps(pod)) if pod is not None else None
        if pod is None:
            self._send(404, {"kind": "Status", "reason": "NotFound"})
        elif not log:
            self._send(200, pod)
        else:
            self._log(name, query)

    def _log(self, name: str, query: dict[str, list[str]]) -> None:
        follow = query.get("follow", ["false"])[0] == "true"
        limit = int(query.get("limitBytes", ["0"])[0]) or None
        try:
            logs = self.kube.logs(name, follow)
        except DockerException:
            logs = None
        if logs is None:
            self._send(400, {"kind": "Status", "message": "container is waiting to start"})
            return
        if not follow:
            data = logs[:limit]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)  # streamed until the container ends: no length, then close
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent = 0
        with contextlib.suppress(DockerException, OSError, ValueError):
            for chunk in logs:
                if limit is not None:
                    chunk = chunk[: limit - sent]
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                if limit is not None and sent >= limit:
                    break
