"""The custom-node registry over HTTP: create, save, versions, diff, delete, who may do what."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from tests.api.conftest import Account
from tests.api.custom_node_helpers import EMA_CODE, create_node, manifest, save_node, verdicts

__all__ = ["verdicts"]
pytestmark = pytest.mark.usefixtures("verdicts")


@pytest.mark.sqlite_too
def test_create_stores_version_1_0_0_with_its_hash_verdict_and_store_file(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    node = create_node(client, alice)
    assert set(node) == {
        "id", "name", "owner", "language", "created_at", "updated_at", "version",
        "can_edit", "can_manage",
    }  # fmt: skip
    assert node["can_edit"] is True and node["can_manage"] is True
    assert (node["name"], node["owner"], node["language"]) == ("my_ema", "alice", "python")
    v = node["version"]
    assert v["version"] == "1.0.0" and v["message"] == "Initial version"
    assert len(v["code_hash"]) == 64 and v["in_use_by"] == []
    assert v["lookahead"]["status"] == "pass"
    assert v["manifest"]["code"] == EMA_CODE and v["manifest"]["code_format"] == "source"
    assert v["manifest"]["params_schema"]["properties"]["span"]["default"] == 10
    stored = api_settings.root / "custom-nodes" / f"{v['code_hash']}.json"
    assert stored.is_file() and '"my_ema"' in stored.read_text()
    got = client.get(f"/api/custom-nodes/{node['id']}", headers=alice.headers)
    assert got.status_code == 200 and got.json() == node


def test_list_is_paged_newest_first_with_summaries(client: TestClient, alice: Account) -> None:
    for name in ("a_one", "a_two", "a_three"):
        create_node(client, alice, name=name)
    page = client.get("/api/custom-nodes?offset=0&limit=2", headers=alice.headers).json()
    assert page["total"] == 3
    assert [n["name"] for n in page["items"]] == ["a_three", "a_two"]
    item = page["items"][0]
    assert item["latest_version"] == "1.0.0" and item["versions"] == 1
    assert item["lookahead_status"] == "pass" and item["summary"] == "EMA of a series."
    assert client.get("/api/custom-nodes?limit=0", headers=alice.headers).status_code == 422


@pytest.mark.sqlite_too
def test_saving_bumps_the_patch_and_unchanged_adds_nothing(
    client: TestClient, alice: Account
) -> None:
    nid = create_node(client, alice)["id"]
    same = save_node(client, alice, nid)
    assert same["version"]["version"] == "1.0.0"
    changed = save_node(client, alice, nid, code=EMA_CODE + "# v2\n", message="tweak")
    assert changed["version"]["version"] == "1.0.1"
    assert changed["version"]["message"] == "tweak"
    explicit = save_node(client, alice, nid, code=EMA_CODE + "# v3\n", version="2.0.0")
    assert explicit["version"]["version"] == "2.0.0"
    again = save_node(client, alice, nid, code=EMA_CODE + "# v3\n")
    assert again["version"]["version"] == "2.0.0"  # unchanged: still 2.0.0
    versions = client.get(f"/api/custom-nodes/{nid}/versions", headers=alice.headers).json()
    assert [v["version"] for v in versions] == ["2.0.0", "1.0.1", "1.0.0"]
    assert all(v["manifest"]["code"] is None for v in versions)
    one = client.get(f"/api/custom-nodes/{nid}/versions/1.0.1", headers=alice.headers).json()
    assert one["manifest"]["code"] == EMA_CODE + "# v2\n"  # versions never change


def test_a_version_not_above_the_highest_is_a_conflict(client: TestClient, alice: Account) -> None:
    nid = create_node(client, alice, version="1.2.0")["id"]
    for version in ("1.2.0", "1.1.9", "1.2.0-rc.1"):
        resp = client.put(
            f"/api/custom-nodes/{nid}",
            json=manifest(code=EMA_CODE + "#x\n", version=version),
            headers=alice.headers,
        )
        assert resp.status_code == 409, version
        assert "not greater than 1.2.0" in resp.json()["detail"]


def test_a_deleted_version_number_is_never_reused(client: TestClient, alice: Account) -> None:
    nid = create_node(client, alice)["id"]
    save_node(client, alice, nid, code=EMA_CODE + "#2\n")
    gone = client.delete(f"/api/custom-nodes/{nid}/versions/1.0.1", headers=alice.headers)
    assert gone.status_code == 204
    node = client.get(f"/api/custom-nodes/{nid}", headers=alice.headers).json()
    assert node["version"]["version"] == "1.0.0"
    assert (
        client.get(f"/api/custom-nodes/{nid}/versions/1.0.1", headers=alice.headers).status_code
        == 404
    )
    assert save_node(client, alice, nid, code=EMA_CODE + "#3\n")["version"]["version"] == "1.0.2"
    last = client.delete(f"/api/custom-nodes/{nid}/versions/1.0.0", headers=alice.headers)
    assert last.status_code == 204
    only = client.delete(f"/api/custom-nodes/{nid}/versions/1.0.2", headers=alice.headers)
    assert only.status_code == 409 and "only version" in only.json()["detail"]


def test_name_and_language_are_fixed(client: TestClient, alice: Account) -> None:
    nid = create_node(client, alice)["id"]
    body = manifest(name="other", language="javascript", code="function run(){}")
    resp = client.put(f"/api/custom-nodes/{nid}", json=body, headers=alice.headers)
    assert resp.status_code == 422
    locs = [e["loc"] for e in resp.json()["detail"]["errors"]]
    assert locs == [["name"], ["language"]]


@pytest.mark.sqlite_too
def test_names_are_unique_per_owner_and_free_after_delete(
    client: TestClient, alice: Account, bob: Account
) -> None:
    nid = create_node(client, alice)["id"]
    dup = client.post("/api/custom-nodes", json=manifest(), headers=alice.headers)
    assert dup.status_code == 409 and "my_ema" in dup.json()["detail"]
    create_node(client, bob)  # another owner may use the name
    assert client.delete(f"/api/custom-nodes/{nid}", headers=alice.headers).status_code == 204
    assert client.get(f"/api/custom-nodes/{nid}", headers=alice.headers).status_code == 404
    assert create_node(client, alice)["version"]["version"] == "1.0.0"


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"name": "sma"}, ["name"], "built-in"),
        ({"name": "Bad-Name"}, ["name"], "use lower-case letters, digits and '_'"),
        ({"version": "1.2"}, ["version"], "semantic version"),
        ({"inputs": [{"name": "x", "type": "trades"}]}, ["inputs", 0, "type"], "cannot take"),
        ({"inputs": [{"name": "x", "type": "nonsense"}]}, ["inputs", 0, "type"], "must be one of"),
        ({"outputs": []}, ["outputs"], "at least one output"),
        ({"outputs": [{"name": "x", "type": "series"}]}, ["outputs", 0, "name"], "used twice"),
        ({"params_schema": {"type": "array"}}, ["params_schema"], '"type": "object"'),
        ({"code": "x\x00"}, ["code"], "NUL"),
        ({"code_format": "wat"}, ["code_format"], "code_format 'source'"),
        (
            {
                "language": "wasm",
                "code": "(module)",
                "params_schema": {"type": "object", "properties": {"label": {"type": "string"}}},
            },
            ["params_schema", "properties", "label", "type"],
            "must be a number, integer or boolean",
        ),
        ({"language": "wasm", "code": "(module (func $f"}, ["code"], "does not assemble"),
        ({"language": "ruby"}, ["language"], "must be one of"),
        ({"extra": 1}, ["extra"], "not an accepted field; remove it"),
    ],
)
def test_invalid_manifests_are_422_saying_what_and_where(
    client: TestClient, alice: Account, change: dict[str, Any], loc: list[Any], words: str
) -> None:
    resp = client.post("/api/custom-nodes", json=manifest(**change), headers=alice.headers)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert detail["message"].startswith("invalid manifest: ")
    assert any(e["loc"] == loc and words in e["msg"] for e in detail["errors"]), detail
    assert client.get("/api/custom-nodes", headers=alice.headers).json()["total"] == 0


def test_wasm_nodes_are_checked_and_saved(client: TestClient, alice: Account) -> None:
    templates = client.get("/api/custom-nodes/templates", headers=alice.headers).json()
    wat = next(t for t in templates if (t["language"], t["kind"]) == ("wasm", "indicator"))
    body = {**wat["manifest"], "name": "wasm_ema", "version": None}
    resp = client.post("/api/custom-nodes", json=body, headers=alice.headers)
    assert resp.status_code == 201, resp.text
    assert resp.json()["version"]["manifest"]["code_format"] == "wat"


def test_templates_are_the_nine_starting_points(client: TestClient, observer: Account) -> None:
    templates = client.get("/api/custom-nodes/templates", headers=observer.headers).json()
    assert len(templates) == 9
    assert {(t["language"], t["kind"]) for t in templates} == {
        (lang, kind)
        for lang in ("python", "javascript", "wasm")
        for kind in ("indicator", "signal", "transform")
    }
    assert all(t["title"] and t["manifest"]["code"] for t in templates)


def test_diff_shows_code_and_manifest_changes(client: TestClient, alice: Account) -> None:
    nid = create_node(client, alice)["id"]
    save_node(
        client, alice, nid, code=EMA_CODE.replace("adjust=False", "adjust=True"), summary="EMA."
    )
    resp = client.get(
        f"/api/custom-nodes/{nid}/diff?from_version=1.0.0&to_version=1.0.1", headers=alice.headers
    )
    assert resp.status_code == 200
    body = resp.json()
    assert (body["from_version"], body["to_version"]) == ("1.0.0", "1.0.1")
    assert '-    return {"ema": x.ewm(span=params["span"], adjust=False).mean()}' in body["unified"]
    assert "+++ my_ema@1.0.1" in body["unified"]
    assert body["manifest_changes"] == [
        {"field": "summary", "from": "EMA of a series.", "to": "EMA."}
    ]
    missing = client.get(
        f"/api/custom-nodes/{nid}/diff?from_version=1.0.0&to_version=9.9.9", headers=alice.headers
    )
    assert missing.status_code == 404 and "9.9.9" in missing.json()["detail"]


def test_other_developers_get_404_and_observers_403_on_writes(
    client: TestClient, alice: Account, bob: Account, observer: Account, admin: Account
) -> None:
    nid = create_node(client, alice)["id"]
    base = f"/api/custom-nodes/{nid}"
    for method, url in [
        ("GET", base),
        ("PUT", base),
        ("DELETE", base),
        ("GET", f"{base}/versions"),
        ("GET", f"{base}/versions/1.0.0"),
        ("DELETE", f"{base}/versions/1.0.0"),
        ("GET", f"{base}/diff?from_version=1.0.0&to_version=1.0.0"),
    ]:
        body = manifest(code=EMA_CODE + "#bob\n") if method == "PUT" else None
        resp = client.request(method, url, json=body, headers=bob.headers)
        assert resp.status_code == 404, (method, url)
    assert client.get("/api/custom-nodes", headers=bob.headers).json()["total"] == 0
    # observers read everything and write nothing (403 before existence)
    assert client.get(base, headers=observer.headers).status_code == 200
    for method, url in [("POST", "/api/custom-nodes"), ("PUT", base), ("DELETE", base),
                        ("DELETE", f"{base}/versions/1.0.0"),
                        ("PUT", "/api/custom-nodes/999999"),
                        ("POST", "/api/custom-nodes/test-run")]:  # fmt: skip
        resp = client.request(method, url, json=manifest(), headers=observer.headers)
        assert resp.status_code == 403, (method, url)
    # admins may change anyone's node
    assert save_node(client, admin, nid, code=EMA_CODE + "#admin\n")["owner"] == "alice"
    assert client.get("/api/custom-nodes", headers=admin.headers).json()["total"] == 1


def test_unknown_ids_and_versions_are_404_and_bad_ones_422(
    client: TestClient, alice: Account
) -> None:
    assert client.get("/api/custom-nodes/424242", headers=alice.headers).status_code == 404
    nid = create_node(client, alice)["id"]
    resp = client.get(f"/api/custom-nodes/{nid}/versions/3.0.0", headers=alice.headers)
    assert resp.status_code == 404
    bad = client.get("/api/custom-nodes/0", headers=alice.headers)
    assert bad.status_code == 422 and bad.json()["detail"]["errors"][0]["loc"][0] == "path"
    assert client.get("/api/custom-nodes", headers={}).status_code == 401


def test_every_write_is_audited(client: TestClient, alice: Account, admin: Account) -> None:
    nid = create_node(client, alice)["id"]
    save_node(client, alice, nid, code=EMA_CODE + "#2\n")
    client.delete(f"/api/custom-nodes/{nid}/versions/1.0.0", headers=alice.headers)
    client.delete(f"/api/custom-nodes/{nid}", headers=alice.headers)
    events = client.get("/api/audit?limit=20", headers=admin.headers).json()["items"]
    got = [(e["action"], e["actor"]) for e in events if e["action"].startswith("custom_node.")]
    assert got == [
        ("custom_node.delete", "alice"),
        ("custom_node.delete_version", "alice"),
        ("custom_node.update", "alice"),
        ("custom_node.create", "alice"),
    ]
    create_event = next(e for e in events if e["action"] == "custom_node.create")
    assert create_event["detail"]["version"] == "1.0.0"
    assert len(create_event["detail"]["code_hash"]) == 64


def test_openapi_documents_the_routes_and_shapes(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/custom-nodes",
        "/api/custom-nodes/templates",
        "/api/custom-nodes/test-run",
        "/api/custom-nodes/{node_id}",
        "/api/custom-nodes/{node_id}/versions",
        "/api/custom-nodes/{node_id}/versions/{version}",
        "/api/custom-nodes/{node_id}/diff",
    ):
        assert path in paths, path
    schemas = spec["components"]["schemas"]
    assert set(schemas["NodeVersion"]["properties"]) == {
        "version", "code_hash", "created_at", "message", "manifest", "lookahead", "in_use_by",
    }  # fmt: skip
    assert "from" in schemas["ManifestChange"]["properties"]
    created = paths["/api/custom-nodes"]["post"]["responses"]
    assert {"201", "409", "422"} <= set(created)
