"""The custom-node manifest: validated at the door, frozen, resources clamped to admin caps."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from runners.custom import (
    TEMPLATE_KINDS,
    AdminCaps,
    CustomNodeError,
    CustomNodeManifest,
    ManifestCatalog,
    resolve_params,
    template,
)


def manifest(**changes: Any) -> CustomNodeManifest:
    base: dict[str, Any] = {
        "name": "my_node",
        "version": "1.2.3",
        "language": "python",
        "inputs": [{"name": "x", "type": "series"}],
        "outputs": [{"name": "y", "type": "series"}],
        "params_schema": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1, "default": 5}},
        },
        "code": "def run(inputs, params):\n    return {'y': inputs['x']}\n",
    }
    base.update(changes)
    return CustomNodeManifest.model_validate(base)


def test_a_valid_manifest_is_frozen_and_hashes_its_code() -> None:
    m = manifest()
    with pytest.raises(ValidationError):
        m.name = "other"  # type: ignore[misc]
    assert len(m.code_hash()) == 64
    assert manifest(code="x = 1\ndef run(i, p): return {}").code_hash() != m.code_hash()
    assert manifest(version="2.0.0").code_hash() == m.code_hash()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": "1.2"}, "semantic version"),
        ({"version": "v1.2.3"}, "semantic version"),
        ({"name": "My Node"}, "node name"),
        ({"outputs": []}, "at least one output"),
        ({"outputs": [{"name": "x", "type": "series"}]}, "used twice"),
        ({"inputs": [{"name": "m", "type": "model"}]}, "cannot take a model"),
        ({"outputs": [{"name": "o", "type": "orders"}]}, "cannot produce a orders"),
        ({"params_schema": {"type": "array"}}, '"type": "object"'),
        ({"params_schema": {"type": "object", "properties": {"n": {"type": 5}}}}, "JSON Schema"),
        ({"code": "x" * (1 << 20 + 1)}, "larger than"),
        ({"language": "wasm"}, "'wat' or 'wasm_base64'"),
        ({"language": "javascript", "code_format": "wat"}, "code_format 'source'"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_bad_manifests_are_refused_with_a_reason(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        manifest(**changes)


def test_wasm_manifests_need_the_magic_numeric_params_and_frame_columns() -> None:
    wasm_ok = {"language": "wasm", "code_format": "wasm_base64"}
    good = base64.b64encode(b"\0asm\x01\0\0\0").decode()
    schema = {"type": "object", "properties": {"span": {"type": "integer"}}}
    assert manifest(**wasm_ok, code=good, params_schema=schema).language == "wasm"
    with pytest.raises(ValidationError, match="magic"):
        manifest(**wasm_ok, code=base64.b64encode(b"MZ\x90\0").decode())
    with pytest.raises(ValidationError, match="base64"):
        manifest(**wasm_ok, code="not base64!")
    with pytest.raises(ValidationError, match="must be a number"):
        params = {"type": "object", "properties": {"s": {"type": "string"}}}
        manifest(**wasm_ok, code=good, params_schema=params)
    with pytest.raises(ValidationError, match="lists its columns"):
        manifest(
            **wasm_ok, code=good, params_schema=schema, outputs=[{"name": "f", "type": "frame"}]
        )


def test_resource_requests_are_clamped_to_admin_caps() -> None:
    caps = AdminCaps(max_memory_mb=1024, max_wall_s=60, max_cpus=2, max_output_mb=100)
    big = manifest(resources={"memory_mb": 8192, "wall_s": 600, "cpus": 4, "output_mb": 500})
    lim = big.limits(caps)
    assert (lim.memory_mb, lim.wall_s, lim.cpus, lim.output_bytes) == (1024, 60, 2, 100 << 20)
    assert len(lim.notes) == 4
    assert "requested memory_mb 8192 clamped to the admin cap 1024" in lim.notes
    small = manifest(resources={"memory_mb": 128, "wall_s": 5}).limits(caps)
    assert (small.memory_mb, small.wall_s, small.cpus, small.notes) == (128, 5, 1.0, ())
    default = manifest().limits()
    assert (default.memory_mb, default.cpus, default.pids, default.wall_s) == (512, 1.0, 64, 30)
    assert default.log_bytes == 1 << 20


def test_params_get_schema_defaults_and_are_validated() -> None:
    m = manifest()
    assert resolve_params(m, {}) == {"n": 5}
    assert resolve_params(m, {"n": 9}) == {"n": 9}
    with pytest.raises(CustomNodeError, match="n: 0 is less than the minimum of 1"):
        resolve_params(m, {"n": 0})


def test_catalog_finds_code_by_hash_and_names_the_node_otherwise() -> None:
    m = manifest()
    catalog = ManifestCatalog([m])
    assert catalog.get(m.code_hash(), "n1") is m
    with pytest.raises(CustomNodeError, match="node 'n1': no custom node code"):
        catalog.get("0" * 64, "n1")


@pytest.mark.parametrize("language", ["python", "javascript", "wasm"])
@pytest.mark.parametrize("kind", TEMPLATE_KINDS)
def test_every_template_is_a_valid_manifest(language: str, kind: str) -> None:
    m = template(language, kind)  # type: ignore[arg-type]
    assert m.language == language and m.outputs
    assert "run" in m.code
