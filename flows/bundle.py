"""Run bundles: one run and everything it needs to be re-run, moved between installations.

A bundle (``.afbundle``) is a gzipped tar: ``MANIFEST.json`` first (format, run id, the data
map, and the sha256 and size of every other member), then ``run/`` (the run directory:
``run.json``, ``ir.json``, results, logs), ``custom-nodes/<code hash>.json`` (the manifests the
run pins), ``data/<node id>/<file>`` (the data files and web datasets it read),
``catalog/objects/<version>/...`` (the catalog versions it read) and
``artifacts/<key[:2]>/<key>/`` (its orders / trades / equity outputs, for ``diff``).

:func:`import_bundle` trusts nothing: only regular files with plain relative names, each under
a size cap and all under a total cap, exactly the members the manifest lists with the hashes it
lists; custom-node manifests must hash to their names, data files to the run's recorded
fingerprints, catalog versions must verify. Everything is unpacked into a staging folder and
checked before anything is placed; the run directory appears last, and a failure removes what
the import placed. The manifest proves integrity (no member changed in transit without the
manifest changing too), not authorship.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from flows.rerun import IMPORT_FILE, RUN_ARTIFACTS, StoredRun
from flows.settings import CoreSettings
from nodes.errors import AlphaForgeError

__all__ = ["BundleError", "export_bundle", "import_bundle"]

FORMAT = 1
MANIFEST = "MANIFEST.json"
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_TOTAL_BYTES = 8 * 1024**3
MAX_MEMBERS = 100_000
_RUN_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
_SKIPPED_RUN_FILES = {"process.json", IMPORT_FILE}


class BundleError(AlphaForgeError):
    """A run bundle that cannot be written or is not acceptable (tampered, unsafe, too big)."""

    code = "AF712"


# ---- export ---------------------------------------------------------------------------------


def export_bundle(stored: StoredRun, settings: CoreSettings, out: Path) -> dict[str, Any]:
    """Write ``stored``'s bundle to ``out``; returns its manifest."""
    members: dict[str, bytes | Path] = {}
    for path in sorted(stored.run_dir.rglob("*")):
        rel = path.relative_to(stored.run_dir)
        if rel.parts[0] == RUN_ARTIFACTS or rel.name in _SKIPPED_RUN_FILES:
            continue
        if path.is_symlink():
            raise BundleError(f"{path} is a symbolic link: a run directory holds none")
        if path.is_file():
            members[f"run/{rel.as_posix()}"] = path
    for node_id, code_hash in sorted(_custom_nodes(stored).items()):
        manifest_file = settings.custom_nodes_dir / f"{code_hash}.json"
        if not manifest_file.is_file():
            raise BundleError(
                f"node {node_id!r}: custom node code {code_hash[:12]} is not in "
                f"{settings.custom_nodes_dir}: the bundle cannot carry it"
            )
        members[f"custom-nodes/{code_hash}.json"] = manifest_file
    data = _export_data(stored, settings, members)
    _export_artifacts(stored, settings, members)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "run_id": stored.record.run_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": data,
        "members": {},
    }
    digests = {name: _digest(src) for name, src in members.items()}
    manifest["members"] = {n: {"sha256": d, "bytes": s} for n, (d, s) in sorted(digests.items())}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
            for name, src in sorted(members.items()):
                _add_bytes(tar, name, src if isinstance(src, bytes) else src.read_bytes())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def _export_data(
    stored: StoredRun, settings: CoreSettings, members: dict[str, bytes | Path]
) -> dict[str, dict[str, Any]]:
    """Add the data the run read; returns node id -> how to put it back."""
    out: dict[str, dict[str, Any]] = {}
    summary = stored.record.spec or {}
    base = summary.get("base_dir") or stored.record.base_dir
    for node_id, entry in sorted(stored.record.datasets.items()):
        fingerprint = str(entry.get("fingerprint") or "")
        source = dict(entry.get("source") or {})
        params = entry.get("params") or {}
        if fingerprint.startswith("catalog:"):
            version = fingerprint.removeprefix("catalog:")
            _export_version(settings, summary.get("catalog_url"), version, members)
            out[node_id] = {"kind": "catalog", "version": version}
            continue
        file = source.get("file")
        if file is None and isinstance(params.get("path"), str) and base:
            file = str(settings.resolve_ref(base) / params["path"])
        if file is None:
            raise BundleError(
                f"node {node_id!r} ({entry.get('type')}) reads data this version cannot bundle "
                f"(fingerprint {fingerprint[:24]})"
            )
        path = settings.resolve_ref(file)
        if not path.is_file() or _digest(path)[0] != fingerprint:
            raise BundleError(
                f"the data changed since run {stored.record.run_id}: node {node_id!r} read "
                f"{path}, which is missing now or no longer has sha256 {fingerprint[:12]}"
            )
        member = f"data/{node_id}/{path.name}"
        members[member] = path
        out[node_id] = {
            "kind": "dataset" if source.get("dataset") else "file",
            "member": member,
            "sha256": fingerprint,
            "dataset": source.get("dataset"),
            "path": params.get("path"),
        }
    return out


def _export_version(
    settings: CoreSettings, url: str | None, version: str, members: dict[str, bytes | Path]
) -> None:
    from flows.catalog import open_catalog

    if url is not None:
        settings = settings.model_copy(update={"catalog_url": url})
    catalog = open_catalog(settings)
    catalog.verify(version)
    manifest = catalog.manifest(version)
    rels = [f"objects/{version}/{f['path']}" for f in manifest["files"]]
    for rel in [*rels, f"objects/{version}/report.json", f"objects/{version}/manifest.json"]:
        members[f"catalog/{rel}"] = catalog.storage.read_bytes(rel)


def _export_artifacts(
    stored: StoredRun, settings: CoreSettings, members: dict[str, bytes | Path]
) -> None:
    from flows.rundiff import output_file

    for node_id, ports in sorted(stored.record.fingerprints.items()):
        key = stored.record.nodes[node_id].key if node_id in stored.record.nodes else None
        for port in sorted(ports):
            path = output_file(stored, node_id, port, settings)
            if path is None or key is None:
                continue
            for f in sorted(path.parent.iterdir()):
                if f.is_file() and not f.is_symlink():
                    members[f"artifacts/{key[:2]}/{key}/{f.name}"] = f


# ---- import ---------------------------------------------------------------------------------


def import_bundle(
    bundle: Path,
    settings: CoreSettings,
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> str:
    """Check ``bundle`` whole, then place the run and what it needs in ``settings``' store;
    returns the run id. BundleError (nothing placed) when anything is not as it should be."""
    staging = settings.store_root / f".import-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    placed: list[Path] = []
    try:
        manifest = _unpack(bundle, staging, max_member_bytes, max_total_bytes)
        run_id = _check(manifest, staging, settings)
        _place(manifest, staging, settings, run_id, placed)
        return run_id
    except BaseException:
        for path in reversed(placed):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(bundle: Path, staging: Path, max_member: int, max_total: int) -> dict[str, Any]:
    """Unpack every member into ``staging`` after checking its name, kind and size; compare
    with the manifest. Returns the manifest."""
    try:
        tar = tarfile.open(bundle, "r:gz")  # noqa: SIM115 - closed by the `with` below
    except (OSError, tarfile.TarError) as exc:
        raise BundleError(f"{bundle}: not a run bundle (a gzipped tar): {exc}") from None
    seen: dict[str, tuple[str, int]] = {}
    manifest: dict[str, Any] | None = None
    total = 0
    with tar:
        try:
            for count, member in enumerate(tar, start=1):
                name = _safe_name(member.name, bundle)
                if count > MAX_MEMBERS:
                    raise BundleError(f"{bundle}: more than {MAX_MEMBERS} members")
                if member.isdir():
                    continue
                if not member.isfile():
                    kind = (
                        "a symbolic link"
                        if member.issym()
                        else ("a hard link" if member.islnk() else "not a regular file")
                    )
                    raise BundleError(f"{bundle}: member {name!r} is {kind}: refused")
                if member.size > max_member:
                    raise BundleError(
                        f"{bundle}: member {name!r} is {member.size} bytes, over the "
                        f"{max_member}-byte limit for one member"
                    )
                total += member.size
                if total > max_total:
                    raise BundleError(f"{bundle}: members over the {max_total}-byte total limit")
                if name in seen or (name == MANIFEST and manifest is not None):
                    raise BundleError(f"{bundle}: member {name!r} appears twice")
                fh = tar.extractfile(member)
                assert fh is not None
                if name == MANIFEST:
                    manifest = _read_manifest(fh.read(), bundle)
                    continue
                seen[name] = _write_member(fh, staging / name, max_member)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:  # truncated, corrupt
            raise BundleError(f"{bundle}: cannot read the bundle: {exc}") from None
    if manifest is None:
        raise BundleError(f"{bundle}: no {MANIFEST}: not a run bundle")
    listed = manifest["members"]
    for name in sorted(set(listed) | set(seen)):
        if name not in seen:
            raise BundleError(f"{bundle}: member {name!r} is listed in the manifest but missing")
        if name not in listed:
            raise BundleError(f"{bundle}: member {name!r} is not in the manifest: refused")
        if seen[name][0] != listed[name].get("sha256"):
            raise BundleError(
                f"{bundle}: member {name!r} does not match its sha256 in the manifest "
                "(the bundle was changed or damaged)"
            )
    return manifest


def _safe_name(name: str, bundle: Path) -> str:
    path = PurePosixPath(name)
    bad = (
        not name
        or name.startswith(("/", "\\"))
        or "\\" in name
        or ".." in path.parts
        or any(part in ("", ".") for part in name.split("/") if part != "")
        or re.match(r"^[A-Za-z]:", name)
        or any(ord(c) < 32 for c in name)
    )
    if bad:
        raise BundleError(f"{bundle}: member name {name!r} leaves the bundle's folder: refused")
    return str(path)


def _read_manifest(data: bytes, bundle: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise BundleError(f"{bundle}: {MANIFEST} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{bundle}: {MANIFEST} is not a format-{FORMAT} bundle manifest")
    if not isinstance(manifest.get("members"), dict) or not isinstance(manifest.get("data"), dict):
        raise BundleError(f"{bundle}: {MANIFEST} lists no members")
    return manifest


def _write_member(fh: io.BufferedReader | Any, target: Path, limit: int) -> tuple[str, int]:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(target, "xb") as out:
        while chunk := fh.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise BundleError(f"member {target.name!r} is over the {limit}-byte limit")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _check(manifest: dict[str, Any], staging: Path, settings: CoreSettings) -> str:
    """The unpacked bundle is a run whose pinned code and data hash to what it recorded."""
    from flows.spec import read_run_record
    from runners.nodestore import ManifestStore

    run_id = str(manifest.get("run_id", ""))
    if not _RUN_ID.match(run_id):
        raise BundleError(f"the bundle's run id {run_id!r} is not a run id")
    record = read_run_record(staging / "run")
    if record is None or record.run_id != run_id or not (staging / "run" / "ir.json").is_file():
        raise BundleError(f"the bundle holds no readable run {run_id} (run.json, ir.json)")
    if (settings.runs_dir / run_id).exists():
        raise BundleError(f"run {run_id} is already in {settings.runs_dir}: nothing imported")
    staged_nodes = ManifestStore(staging / "custom-nodes")
    for node_id, code_hash in record.custom_nodes.items():
        try:
            staged_nodes.get(code_hash, node_id)  # refuses a manifest not hashing to its name
        except AlphaForgeError as exc:
            raise BundleError(f"the bundle's custom node code is not acceptable: {exc}") from None
    for node_id, entry in manifest["data"].items():
        recorded = (record.datasets.get(node_id) or {}).get("fingerprint")
        if entry.get("kind") == "catalog":
            _check_version(staging, str(entry.get("version")), recorded, node_id)
            continue
        member = str(entry.get("member"))
        if member not in manifest["members"] or manifest["members"][member]["sha256"] != recorded:
            raise BundleError(
                f"node {node_id!r}: the bundle's data file does not hash to the fingerprint the "
                "run recorded (the bundle was changed)"
            )
    return run_id


def _check_version(staging: Path, version: str, recorded: str | None, node_id: str) -> None:
    from catalog import Catalog, CatalogError

    if recorded != f"catalog:{version}":
        raise BundleError(f"node {node_id!r}: the bundle's catalog version is not the run's")
    try:
        Catalog.open(str(staging / "catalog")).verify(version)
    except CatalogError as exc:
        raise BundleError(f"node {node_id!r}: catalog version {version[:12]}: {exc}") from None


def _place(
    manifest: dict[str, Any],
    staging: Path,
    settings: CoreSettings,
    run_id: str,
    placed: list[Path],
) -> None:
    """Move the checked content into the store; the run directory last."""
    nodes_dir = settings.custom_nodes_dir
    for src in sorted((staging / "custom-nodes").glob("*.json")):
        target = nodes_dir / src.name
        if not target.exists():
            nodes_dir.mkdir(parents=True, exist_ok=True)
            os.replace(src, target)
            placed.append(target)
    versions = {e["version"] for e in manifest["data"].values() if e.get("kind") == "catalog"}
    for version in sorted(versions):
        _place_version(staging, settings, version, placed)
    imported = _place_data(manifest, staging, settings, run_id, placed)
    run_dir = staging / "run"
    artifacts = staging / "artifacts"
    if artifacts.is_dir():
        os.replace(artifacts, run_dir / RUN_ARTIFACTS)
    imported["bundle_created_at"] = manifest.get("created_at")
    (run_dir / IMPORT_FILE).write_text(json.dumps(imported, indent=2, sort_keys=True) + "\n")
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    os.replace(run_dir, settings.runs_dir / run_id)
    placed.append(settings.runs_dir / run_id)


def _place_version(staging: Path, settings: CoreSettings, version: str, placed: list[Path]) -> None:
    from flows.catalog import open_catalog

    catalog = open_catalog(settings)
    rel_manifest = f"objects/{version}/manifest.json"
    if catalog.storage.exists(rel_manifest):
        return  # content-addressed: the same bytes are there already
    src = staging / "catalog" / "objects" / version
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name != "manifest.json")
    for path in [*files, src / "manifest.json"]:  # the manifest last: then the version exists
        rel = f"objects/{version}/{path.relative_to(src).as_posix()}"
        catalog.storage.write_bytes(rel, path.read_bytes())
    if catalog.storage.local:
        placed.append(Path(catalog.storage.path(f"objects/{version}")))


def _place_data(
    manifest: dict[str, Any], staging: Path, settings: CoreSettings, run_id: str, placed: list[Path]
) -> dict[str, Any]:
    """Data files to ``<store>/imports/<run id>/``; returns ``imported.json``'s content (the
    base dir, web datasets and path overrides a re-run uses)."""
    root = settings.store_root / "imports" / run_id
    files = root / "files"
    imported: dict[str, Any] = {"base_dir": str(files), "datasets": {}, "overrides": {}}
    entries = {k: v for k, v in manifest["data"].items() if v.get("kind") != "catalog"}
    if not entries:
        return {"base_dir": None, "datasets": {}, "overrides": {}}
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    placed.append(root)
    for node_id, entry in sorted(entries.items()):
        src = staging / entry["member"]
        rel = entry.get("path")
        if entry["kind"] == "dataset":
            target = root / "datasets" / node_id / src.name
            imported["datasets"][entry["dataset"]] = str(target)
        elif isinstance(rel, str) and _plain_relative(rel):
            target = files / rel
        else:
            target = root / "outside" / node_id / src.name
            imported["overrides"][node_id] = {"path": str(target)}
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(src, target)
    return imported


def _plain_relative(rel: str) -> bool:
    path = PurePosixPath(rel)
    return not path.is_absolute() and ".." not in path.parts and "\\" not in rel and bool(rel)


def _custom_nodes(stored: StoredRun) -> dict[str, str]:
    if stored.record.custom_nodes:
        return dict(stored.record.custom_nodes)
    return {n.id: n.code_hash for n in stored.ir.nodes if n.runtime != "builtin" and n.code_hash}


def _digest(src: bytes | Path) -> tuple[str, int]:
    if isinstance(src, bytes):
        return hashlib.sha256(src).hexdigest(), len(src)
    digest, size = hashlib.sha256(), 0
    with open(src, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))
