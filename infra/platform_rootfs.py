"""What the offline platform image holds from this machine's virtualenv (used by
``infra/build_platform_image.sh``; standard library only).

``python infra/platform_rootfs.py files SITE`` prints, one per line and relative to ``SITE``,
every file the installed distributions of the platform's run-time closure own (their RECORD):
the ``[project] dependencies`` of ``pyproject.toml`` and, recursively, what those require
(markers evaluated for this interpreter, no extras but the ones asked for), plus the packages
the Makefile installs without dependencies (hftbacktest). Development tools (pytest, ruff,
mypy, moto...) are left out. ``... scripts SITE OUT`` writes the closure's console scripts into
``OUT`` with ``#!/usr/local/bin/python3`` (the image's interpreter). ``... hash SITE`` prints
the closure's ``name==version`` list (an input of the image's content hash).

Each command takes optional requirements after ``SITE`` (``files SITE 'moto[server]'``): the
closure of those instead of the platform's (the offline stand-in images of
``infra/build_offline_images.sh`` layer such a closure on the platform runtime).
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# installed with --no-deps (see the Makefile): its metadata pins an older numpy
NO_DEPS = ("hftbacktest",)
# the project itself runs from /opt/alphaforge (its editable install points at this checkout)
SKIP = {"alphaforge"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _marker_ok(req: str, extras: set[str]) -> bool:
    if ";" not in req:
        return True
    marker = req.split(";", 1)[1].strip()
    try:
        from packaging.markers import Marker
    except ImportError:  # pragma: no cover - pip vendors it; Prefect brings it
        return "extra" not in marker
    m = Marker(marker)
    if "extra" in marker:
        return any(m.evaluate({"extra": e}) for e in extras) if extras else False
    return bool(m.evaluate())


def closure(site: Path, roots: list[str] | None = None) -> list[metadata.Distribution]:
    """The installed distributions the platform needs at run time (or ``roots`` and what they
    require)."""
    if not roots:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        roots = [*project["dependencies"], *NO_DEPS]
    todo: list[tuple[str, set[str]]] = []
    for req in roots:
        m = _NAME.match(req)
        if m and _marker_ok(req, set()):
            todo.append((m.group(1), {e.strip() for e in (m.group(3) or "").split(",") if e}))
    dists = {_norm(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])}
    seen: dict[str, set[str]] = {}
    out: dict[str, metadata.Distribution] = {}
    while todo:
        name, extras = todo.pop()
        key = _norm(name)
        if key in SKIP or (extras <= seen.get(key, set()) and key in seen):
            continue
        seen[key] = seen.get(key, set()) | extras
        dist = dists.get(key)
        if dist is None:
            raise SystemExit(f"platform_rootfs: {name} is required but not installed in {site}")
        out[key] = dist
        if key in NO_DEPS:
            continue
        for req in dist.requires or []:
            m = _NAME.match(req)
            if m and _marker_ok(req, seen[key]):
                todo.append((m.group(1), {e.strip() for e in (m.group(3) or "").split(",") if e}))
    return sorted(out.values(), key=lambda d: _norm(d.metadata["Name"]))


def files(site: Path, roots: list[str] | None = None) -> list[str]:
    found: set[str] = set()
    for dist in closure(site, roots):
        for f in dist.files or []:
            rel = str(f)
            # scripts (../../bin) are rewritten by `scripts`; an editable finder is not wanted
            if rel.startswith("..") or (rel.endswith(".pth") and "__editable__" in rel):
                continue
            if (site / rel).is_file():
                found.add(rel)
    return sorted(found)


def scripts(site: Path, out: Path, roots: list[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for dist in closure(site, roots):
        for ep in dist.entry_points:
            if ep.group != "console_scripts":
                continue
            module, _, attr = ep.value.partition(":")
            call = attr.strip() or "main"
            target = out / ep.name
            target.write_text(
                "#!/usr/local/bin/python3\nimport sys\n"
                f"from {module.strip()} import {call.split('.')[0]}\n"
                f"if __name__ == '__main__':\n    sys.exit({call}())\n"
            )
            target.chmod(0o755)
    # the project's own command (its editable install is not in the closure)
    cli = out / "alphaforge"
    cli.write_text(
        "#!/usr/local/bin/python3\nimport sys\nfrom cli.main import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    cli.chmod(0o755)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] not in ("files", "scripts", "hash"):
        raise SystemExit(
            "usage: platform_rootfs.py files SITE [REQ...] | scripts SITE OUT [REQ...] | "
            "hash SITE [REQ...]"
        )
    site = Path(argv[1])
    if argv[0] == "files":
        print("\n".join(files(site, argv[2:])))
    elif argv[0] == "hash":
        print("\n".join(f"{d.metadata['Name']}=={d.version}" for d in closure(site, argv[2:])))
    else:
        scripts(site, Path(argv[2]), argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
