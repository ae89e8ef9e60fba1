"""Listing devboxes (order, limits, pagination, filters, total count) and the metadata key/value endpoints,
on a private server so every count is exact."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, OTHER_API_KEY, ServerProcess, wait_for

COUNT = 7
SHUT_DOWN = 2  # the two oldest


@dataclass
class Fleet:
    server: ServerProcess
    http: httpx.Client
    ids_oldest_first: list[str]
    metadata: list[dict[str, str]]

    @property
    def ids_newest_first(self) -> list[str]:
        return list(reversed(self.ids_oldest_first))


def metadata_for(index: int) -> dict[str, str]:
    meta = {"team": ["red", "blue", "green"][index % 3], "index": f"{index:02d}"}
    if index % 2 == 0:
        meta["even"] = "yes"
    return meta


@pytest.fixture(scope="module")
def fleet(server_factory) -> Iterator[Fleet]:
    srv = server_factory()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        ids: list[str] = []
        metas = [metadata_for(i) for i in range(COUNT)]
        try:
            for meta in metas:
                response = client.post("/v1/devboxes", json={"name": f"list-{meta['index']}", "metadata": meta})
                assert response.status_code == 200, response.text
                ids.append(response.json()["id"])
            for devbox_id in ids:
                assert wait_for(client, devbox_id, ["running", "failure", "shutdown"])["status"] == "running"
            for devbox_id in ids[:SHUT_DOWN]:
                assert client.post(f"/v1/devboxes/{devbox_id}/shutdown").status_code == 200
            yield Fleet(srv, client, ids, metas)
        finally:
            for devbox_id in ids:
                client.post(f"/v1/devboxes/{devbox_id}/shutdown")


def page(fleet: Fleet, **params: Any) -> dict[str, Any]:
    response = fleet.http.get("/v1/devboxes", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def ids_in(body: dict[str, Any]) -> list[str]:
    return [d["id"] for d in body["devboxes"]]


def test_list_is_newest_first_with_default_limit(fleet):
    body = page(fleet)
    assert ids_in(body) == fleet.ids_newest_first
    assert body["has_more"] is False
    assert body["total_count"] == COUNT
    create_times = [d["create_time_ms"] for d in body["devboxes"]]
    assert create_times == sorted(create_times, reverse=True)
    # Each item is a full DevboxView.
    first = body["devboxes"][0]
    assert first["metadata"] == fleet.metadata[-1]
    assert first["name"] == f"list-{COUNT - 1:02d}"
    assert first["state_transitions"][0]["status"] == "provisioning"


def test_default_limit_is_20(server_factory):
    srv = server_factory()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        created: list[str] = []
        try:
            # Shut down at once: the list counts ended devboxes too, and no container is left running.
            for _ in range(21):
                response = client.post("/v1/devboxes", json={})
                assert response.status_code == 200, response.text
                created.append(response.json()["id"])
                assert client.post(f"/v1/devboxes/{created[-1]}/shutdown").status_code == 200
            body = client.get("/v1/devboxes").json()
            assert len(body["devboxes"]) == 20
            assert body["has_more"] is True
            assert body["total_count"] == 21
            assert [d["id"] for d in body["devboxes"]] == list(reversed(created))[:20]
            big = client.get("/v1/devboxes", params={"limit": 5000}).json()
            assert len(big["devboxes"]) == 21
            assert big["has_more"] is False
        finally:
            for devbox_id in created:
                client.post(f"/v1/devboxes/{devbox_id}/shutdown")


@pytest.mark.parametrize("limit", [0, 5001, -1])
def test_limit_out_of_range_is_400(fleet, limit):
    response = fleet.http.get("/v1/devboxes", params={"limit": limit})
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "detail"}


def test_limit_bounds_are_accepted(fleet):
    assert len(page(fleet, limit=5000)["devboxes"]) == COUNT
    one = page(fleet, limit=1)
    assert ids_in(one) == fleet.ids_newest_first[:1]
    assert one["has_more"] is True


def test_limit_not_an_integer_is_4xx(fleet):
    response = fleet.http.get("/v1/devboxes", params={"limit": "many"})
    assert 400 <= response.status_code < 500, response.text


def test_pagination_walks_every_page_without_duplicates(fleet):
    seen: list[str] = []
    pages = []
    params: dict[str, Any] = {"limit": 3}
    for _ in range(10):
        body = page(fleet, **params)
        pages.append(body)
        seen += ids_in(body)
        if not body["has_more"]:
            break
        params["starting_after"] = ids_in(body)[-1]
    assert [len(p["devboxes"]) for p in pages] == [3, 3, 1]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert all(p["total_count"] == COUNT for p in pages)
    assert seen == fleet.ids_newest_first
    assert len(set(seen)) == len(seen)


def test_pagination_with_exact_multiple_ends_with_has_more_false(fleet):
    body = page(fleet, limit=COUNT)
    assert len(body["devboxes"]) == COUNT
    assert body["has_more"] is False
    after_last = page(fleet, limit=3, starting_after=fleet.ids_oldest_first[0])
    assert after_last["devboxes"] == []
    assert after_last["has_more"] is False


def test_status_filter(fleet):
    running = page(fleet, status="running")
    assert ids_in(running) == fleet.ids_newest_first[: COUNT - SHUT_DOWN]
    assert running["total_count"] == COUNT - SHUT_DOWN
    assert all(d["status"] == "running" for d in running["devboxes"])

    shut = page(fleet, status="shutdown")
    assert ids_in(shut) == fleet.ids_newest_first[COUNT - SHUT_DOWN :]
    assert shut["total_count"] == SHUT_DOWN

    suspended = page(fleet, status="suspended")
    assert suspended["devboxes"] == []
    assert suspended["total_count"] == 0
    assert suspended["has_more"] is False

    paged = page(fleet, status="running", limit=2, starting_after=fleet.ids_newest_first[1])
    assert ids_in(paged) == fleet.ids_newest_first[2:4]
    assert paged["has_more"] is True


def test_include_total_count(fleet):
    with_count = page(fleet, include_total_count="true", limit=2)
    assert with_count["total_count"] == COUNT
    without = page(fleet, include_total_count="false", limit=2)
    assert without.get("total_count") is None
    assert ids_in(without) == ids_in(with_count)
    assert without["has_more"] is True


@pytest.mark.parametrize("status", ["bogus", "RUNNING", "stopped"])
def test_invalid_status_filter_is_4xx(fleet, status):
    response = fleet.http.get("/v1/devboxes", params={"status": status})
    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()


def test_list_is_per_tenant(fleet):
    with httpx.Client(
        base_url=fleet.server.base_url, headers={"Authorization": f"Bearer {OTHER_API_KEY}"}, timeout=30
    ) as other:
        body = other.get("/v1/devboxes").json()
        assert body["devboxes"] == []
        assert body["total_count"] == 0
        assert other.get("/v1/devboxes/metadata/keys").json()["keys"] == []


def test_metadata_keys(fleet):
    response = fleet.http.get("/v1/devboxes/metadata/keys")
    assert response.status_code == 200, response.text
    assert response.json()["keys"] == ["even", "index", "team"]


def test_metadata_values_are_sorted_and_distinct(fleet):
    response = fleet.http.get("/v1/devboxes/metadata/keys/team/values")
    assert response.status_code == 200, response.text
    assert response.json() == {"key": "team", "values": ["blue", "green", "red"]}
    index = fleet.http.get("/v1/devboxes/metadata/keys/index/values").json()
    assert index["values"] == [f"{i:02d}" for i in range(COUNT)]
    even = fleet.http.get("/v1/devboxes/metadata/keys/even/values").json()
    assert even["values"] == ["yes"]


def test_metadata_values_of_unknown_key_is_empty(fleet):
    response = fleet.http.get("/v1/devboxes/metadata/keys/no-such-key/values")
    assert response.status_code == 200, response.text
    assert response.json() == {"key": "no-such-key", "values": []}


def test_metadata_follows_updates(fleet):
    newest = fleet.ids_newest_first[0]
    original = fleet.metadata[-1]
    try:
        updated = fleet.http.post(f"/v1/devboxes/{newest}", json={"metadata": {**original, "team": "yellow"}})
        assert updated.status_code == 200, updated.text
        values = fleet.http.get("/v1/devboxes/metadata/keys/team/values").json()["values"]
        assert "yellow" in values
        assert values == sorted(values)
    finally:
        fleet.http.post(f"/v1/devboxes/{newest}", json={"name": f"list-{COUNT - 1:02d}", "metadata": original})


def test_metadata_values_of_blank_key_is_400(fleet):
    response = fleet.http.get("/v1/devboxes/metadata/keys/%20/values")
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "detail"}
