"""The test Kubernetes API server's objects (TaskRuns, Pods, Leases, Events), through real HTTPS with httpx:
bookkeeping, paged lists, watches, the status subresource, patches, preconditions, RBAC and faults."""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from entrypoint.testing.kube import KubeAPIServer

NS = "tekton-tests"
OTHER_NS = "elsewhere"
SA = "controller"
POD = "controller-pod"
POD_UID = "6f1c1f0e-8a3b-4c1e-9d55-0a1b2c3d4e5f"
TASKRUNS = f"/apis/tekton.dev/v1/namespaces/{NS}/taskruns"
ALL_TASKRUNS = "/apis/tekton.dev/v1/taskruns"
PODS = f"/api/v1/namespaces/{NS}/pods"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
EVENTS = f"/api/v1/namespaces/{NS}/events"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
TIMEOUT = 5.0
CONFLICT = (
    'Operation cannot be fulfilled on taskruns.tekton.dev "{}": the object has been modified;'
    " please apply your changes to the latest version and try again"
)


@pytest.fixture
def server() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as srv:
        srv.add_pod(NS, POD, POD_UID, SA)
        yield srv


@pytest.fixture
def ca_file(server: KubeAPIServer, tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_bytes(server.ca_pem)
    return path


def _client(server: KubeAPIServer, ca_file: Path, token: str | None, read: float = TIMEOUT) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(
        base_url=server.url,
        verify=ssl.create_default_context(cafile=str(ca_file)),
        headers=headers,
        timeout=httpx.Timeout(TIMEOUT, read=read),
    )


@pytest.fixture
def token(server: KubeAPIServer) -> str:
    """The controller pod's mounted token."""
    return server.caller_token(NS, SA, POD)


@pytest.fixture
def client(server: KubeAPIServer, ca_file: Path, token: str) -> Iterator[httpx.Client]:
    with _client(server, ca_file, token) as c:
        yield c


class _Watch:
    """A watch read on its own thread (and its own connection): the events as they arrive, then None."""

    def __init__(self, server: KubeAPIServer, ca_file: Path, token: str, path: str) -> None:
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.status_code = 0
        self.content_type = ""
        self.error: httpx.TransportError | None = None
        self._client = _client(server, ca_file, token, read=30.0)
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()
        assert self._started.wait(TIMEOUT), "the watch was not answered"

    def _run(self, path: str) -> None:
        try:
            with self._client.stream("GET", path) as response:
                self.status_code = response.status_code
                self.content_type = response.headers.get("Content-Type", "")
                self._started.set()
                for line in response.iter_lines():
                    if line:
                        self.events.put(json.loads(line))
        except httpx.TransportError as err:
            self.error = err  # cut off (the test closing it, or the server stopping) instead of ended
        finally:
            self._started.set()
            self.events.put(None)

    def next(self, timeout: float = TIMEOUT) -> dict[str, Any] | None:
        return self.events.get(timeout=timeout)

    def take(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` events that are not bookmarks."""
        got: list[dict[str, Any]] = []
        while len(got) < count:
            event = self.next()
            assert event is not None, f"the watch ended after {got}"
            if event["type"] != "BOOKMARK":
                got.append(event)
        return got

    def ends_within(self, seconds: float) -> bool:
        """Whether the stream ends, cleanly (its last chunk sent), within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.events.get(timeout=left) is None:
                    return self.error is None
            except queue.Empty:
                return False
        return False

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=TIMEOUT)


@pytest.fixture
def watch(server: KubeAPIServer, ca_file: Path, token: str) -> Iterator[Any]:
    """``watch(path)``: a started :class:`_Watch`, closed after the test."""
    opened: list[_Watch] = []

    def start(path: str) -> _Watch:
        w = _Watch(server, ca_file, token, path)
        opened.append(w)
        return w

    yield start
    server.drop_watches()  # a client closing its end does not wake a reader blocked on it
    for w in opened:
        w.close()


def _taskrun(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"taskRef": {"name": "build"}},
        **extra,
    }


def _create(client: httpx.Client, name: str, **extra: Any) -> dict[str, Any]:
    response = client.post(TASKRUNS, json=_taskrun(name, **extra))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _status(response: httpx.Response, code: int, reason: str, message: str | None = None) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body: dict[str, Any] = response.json()
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert (body["code"], body["reason"]) == (code, reason)
    if message is not None:
        assert body["message"] == message
    return body


def _wait_for(condition: Any, seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- bookkeeping, get and list ------------------------------------------------------------------------


def test_create_fills_the_system_fields_and_one_counter_orders_every_write(client: httpx.Client) -> None:
    first = _create(client, "tr-a", metadata={"name": "tr-a", "uid": "mine", "resourceVersion": ""})
    meta = first["metadata"]
    assert meta["uid"] != "mine"
    assert len(meta["uid"]) == 36
    assert meta["generation"] == 1
    assert meta["namespace"] == NS
    assert time.strptime(meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    lease = client.post(LEASES, json={"metadata": {"name": "lock"}, "spec": {"holderIdentity": "a"}})
    assert lease.status_code == 201
    assert _rv(lease.json()) == _rv(first) + 1
    assert "generation" not in lease.json()["metadata"]  # a Lease does not track its generation
    got = client.get(f"{TASKRUNS}/tr-a")
    assert got.status_code == 200
    assert got.json() == first


def test_create_of_a_taken_name_is_already_exists(client: httpx.Client) -> None:
    _create(client, "tr-a")
    body = _status(
        client.post(TASKRUNS, json=_taskrun("tr-a")),
        409,
        "AlreadyExists",
        'taskruns.tekton.dev "tr-a" already exists',
    )
    assert body["details"] == {"name": "tr-a", "group": "tekton.dev", "kind": "taskruns"}


def test_a_missing_object_is_not_found_in_the_apiserver_wording(client: httpx.Client) -> None:
    body = _status(client.get(f"{TASKRUNS}/nope"), 404, "NotFound", 'taskruns.tekton.dev "nope" not found')
    assert body["details"] == {"name": "nope", "group": "tekton.dev", "kind": "taskruns"}
    _status(client.get(f"{PODS}/nope"), 404, "NotFound", 'pods "nope" not found')


def test_create_over_http_drops_the_status_which_only_the_subresource_writes(
    server: KubeAPIServer, client: httpx.Client
) -> None:
    created = _create(client, "tr-a", status={"podName": "forged"})
    assert "status" not in created
    kept = server.create(_taskrun("tr-b", status={"podName": "tr-b-pod"}))
    assert kept["status"] == {"podName": "tr-b-pod"}


def test_list_pages_in_namespace_name_order_at_one_resource_version(
    server: KubeAPIServer, client: httpx.Client
) -> None:
    for name in ("tr-c", "tr-a", "tr-e", "tr-b", "tr-d"):
        _create(client, name)
    server.create({**_taskrun("tr-z"), "metadata": {"name": "tr-z", "namespace": OTHER_NS}})
    names: list[str] = []
    versions: set[str] = set()
    token = ""
    pages = 0
    while True:
        params = {"limit": "2", **({"continue": token} if token else {})}
        body = client.get(TASKRUNS, params=params).json()
        assert (body["apiVersion"], body["kind"]) == ("tekton.dev/v1", "TaskRunList")
        names += [i["metadata"]["name"] for i in body["items"]]
        versions.add(body["metadata"]["resourceVersion"])
        pages += 1
        token = body["metadata"].get("continue", "")
        if not token:
            break
        assert body["metadata"]["remainingItemCount"] == 5 - len(names)
    assert names == ["tr-a", "tr-b", "tr-c", "tr-d", "tr-e"]
    assert pages == 3
    assert versions == {server.resource_version}
    everywhere = client.get(ALL_TASKRUNS).json()
    first = everywhere["items"][0]["metadata"]
    assert (first["namespace"], first["name"]) == (OTHER_NS, "tr-z")  # namespace first
    assert len(everywhere["items"]) == 6


def test_a_continue_token_from_before_a_compaction_is_expired(
    server: KubeAPIServer, client: httpx.Client
) -> None:
    for name in ("tr-a", "tr-b"):
        _create(client, name)
    token = client.get(TASKRUNS, params={"limit": "1"}).json()["metadata"]["continue"]
    _create(client, "tr-c")
    server.compact()
    _status(client.get(TASKRUNS, params={"limit": "1", "continue": token}), 410, "Expired")


def test_pods_are_served_with_the_uid_their_tokens_carry(server: KubeAPIServer, client: httpx.Client) -> None:
    pod = client.get(f"{PODS}/{POD}").json()
    assert pod["metadata"]["uid"] == POD_UID
    assert pod["spec"]["serviceAccountName"] == SA
    full = server.put_pod_object(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": POD, "namespace": NS, "annotations": {"a": "b"}},
            "spec": {"serviceAccountName": SA, "containers": [{"name": "step-one"}]},
            "status": {"phase": "Succeeded"},
        }
    )
    assert full["metadata"]["uid"] == POD_UID
    assert server.pod(NS, POD).uid == POD_UID
    listed = client.get(PODS).json()
    assert listed["kind"] == "PodList"
    assert "kind" not in listed["items"][0]  # a typed list's items carry no type of their own
    assert listed["items"][0]["status"] == {"phase": "Succeeded"}


def test_a_pod_created_or_deleted_over_http_is_what_tokens_are_checked_against(
    server: KubeAPIServer, client: httpx.Client
) -> None:
    created = client.post(PODS, json={"metadata": {"name": "p2"}, "spec": {"serviceAccountName": SA}})
    assert created.status_code == 201
    assert created.json()["status"] == {"phase": "Pending"}
    assert server.pod(NS, "p2").uid == created.json()["metadata"]["uid"]
    bound = server.caller_token(NS, SA, "p2")
    deleted = client.delete(f"{PODS}/p2")
    assert deleted.status_code == 200
    assert _rv(deleted.json()) > _rv(created.json())
    with pytest.raises(KeyError):
        server.pod(NS, "p2")
    server.allow_token_review(NS, SA)  # TokenReview needs the grant, as in kube-apiserver
    review = client.post(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": bound}},
    )
    assert review.status_code == 201, review.text
    assert review.json()["status"].get("authenticated") is not True


# -- watch ---------------------------------------------------------------------------------------------


def test_a_watch_from_a_lists_version_sees_every_later_change_in_order(
    server: KubeAPIServer, client: httpx.Client, watch: Any
) -> None:
    _create(client, "tr-a")
    rv = client.get(ALL_TASKRUNS).json()["metadata"]["resourceVersion"]
    _create(client, "tr-b")  # before the watch starts: replayed from the history
    w = watch(f"{ALL_TASKRUNS}?watch=true&resourceVersion={rv}&timeoutSeconds=30")
    assert w.status_code == 200
    assert w.content_type == "application/json"
    patched = client.patch(f"{TASKRUNS}/tr-a", headers=MERGE, json={"metadata": {"labels": {"x": "y"}}})
    assert patched.status_code == 200
    assert client.delete(f"{TASKRUNS}/tr-b").status_code == 200
    events = w.take(3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "tr-b"),
        ("MODIFIED", "tr-a"),
        ("DELETED", "tr-b"),
    ]
    versions = [_rv(e["object"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(rv)
    assert events[1]["object"]["metadata"]["labels"] == {"x": "y"}


def test_a_watch_without_a_version_starts_with_every_object_then_follows(
    server: KubeAPIServer, client: httpx.Client, watch: Any
) -> None:
    _create(client, "tr-b")
    _create(client, "tr-a")
    server.create({**_taskrun("tr-x"), "metadata": {"name": "tr-x", "namespace": OTHER_NS}})
    w = watch(f"{TASKRUNS}?watch=true")
    first = w.take(2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in first] == [
        ("ADDED", "tr-a"),
        ("ADDED", "tr-b"),
    ]
    server.create({**_taskrun("tr-y"), "metadata": {"name": "tr-y", "namespace": OTHER_NS}})  # not followed
    server.update_status(NS, "tr-a", {"podName": "tr-a-pod"})
    (modified,) = w.take(1)
    assert modified["type"] == "MODIFIED"
    assert modified["object"]["status"] == {"podName": "tr-a-pod"}


def test_bookmarks_carry_the_current_resource_version(
    server: KubeAPIServer, client: httpx.Client, watch: Any
) -> None:
    server.bookmark_interval = 0.1
    _create(client, "tr-a")
    w = watch(f"{TASKRUNS}?watch=true&resourceVersion={server.resource_version}&allowWatchBookmarks=true")
    server.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": NS}})
    deadline = time.monotonic() + TIMEOUT
    while True:
        event = w.next()
        assert event is not None
        if (
            event["type"] == "BOOKMARK"
            and event["object"]["metadata"]["resourceVersion"] == server.resource_version
        ):
            break
        assert event["type"] == "BOOKMARK", event
        assert time.monotonic() < deadline
    assert event["object"] == {
        "kind": "TaskRun",
        "apiVersion": "tekton.dev/v1",
        "metadata": {"resourceVersion": server.resource_version},
    }


def test_no_bookmarks_unless_asked(server: KubeAPIServer, client: httpx.Client, watch: Any) -> None:
    server.bookmark_interval = 0.05
    w = watch(f"{TASKRUNS}?watch=true&resourceVersion={server.resource_version}&timeoutSeconds=1")
    assert w.ends_within(3.0)
    assert w.events.empty()


def test_a_watch_from_a_compacted_version_is_told_410_expired(
    server: KubeAPIServer, client: httpx.Client, watch: Any
) -> None:
    old = _rv(_create(client, "tr-a"))
    _create(client, "tr-b")
    server.compact()
    w = watch(f"{TASKRUNS}?watch=true&resourceVersion={old}")
    event = w.next()
    assert event is not None
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"] == f"too old resource version: {old} ({server.resource_version})"
    assert w.next() is None
    assert server.watch_count == 0


def test_a_bounded_history_forgets_the_oldest_changes(
    server: KubeAPIServer, client: httpx.Client, watch: Any
) -> None:
    server.history_limit = 2
    start = _rv(_create(client, "tr-a"))
    for name in ("tr-b", "tr-c", "tr-d"):
        _create(client, name)
    expired = watch(f"{TASKRUNS}?watch=true&resourceVersion={start}").next()
    assert expired is not None
    assert expired["object"]["code"] == 410
    resumed = watch(f"{TASKRUNS}?watch=true&resourceVersion={start + 2}")
    assert [e["object"]["metadata"]["name"] for e in resumed.take(1)] == ["tr-d"]


def test_a_watch_ends_cleanly_after_its_timeout(server: KubeAPIServer, watch: Any) -> None:
    started = time.monotonic()
    w = watch(f"{TASKRUNS}?watch=true&resourceVersion={server.resource_version}&timeoutSeconds=1")
    assert w.ends_within(3.0)
    assert time.monotonic() - started >= 0.9
    _wait_for(lambda: server.watch_count == 0)


def test_drop_watches_ends_every_stream_at_once(server: KubeAPIServer, watch: Any) -> None:
    watches = [watch(f"{TASKRUNS}?watch=true"), watch(f"{ALL_TASKRUNS}?watch=true")]
    _wait_for(lambda: server.watch_count == 2)
    assert server.drop_watches() == 2
    assert all(w.ends_within(1.0) for w in watches)
    assert server.watch_count == 0


def test_stopping_the_server_ends_a_watch_within_a_second(server: KubeAPIServer, watch: Any) -> None:
    w = watch(f"{TASKRUNS}?watch=true&timeoutSeconds=60")
    _wait_for(lambda: server.watch_count == 1)
    started = time.monotonic()
    server.stop()
    assert w.ends_within(1.0)
    assert time.monotonic() - started < 1.5


# -- the status subresource and patches -----------------------------------------------------------------


def test_a_status_patch_changes_only_the_status(server: KubeAPIServer, client: httpx.Client) -> None:
    created = server.create(_taskrun("tr-a", status={"podName": "tr-a-pod"}))
    response = client.patch(
        f"{TASKRUNS}/tr-a/status",
        headers=MERGE,
        json={
            "metadata": {
                "labels": {"sneaky": "yes"},
                "resourceVersion": created["metadata"]["resourceVersion"],
            },
            "spec": {"taskRef": {"name": "other"}},
            "status": {"conditions": [{"type": "Succeeded", "status": "True"}]},
        },
    )
    assert response.status_code == 200, response.text
    stored = server.get_object(f"{TASKRUNS}/tr-a")
    assert stored == response.json()
    assert stored["status"] == {
        "podName": "tr-a-pod",
        "conditions": [{"type": "Succeeded", "status": "True"}],
    }
    assert stored["spec"] == created["spec"]
    assert "labels" not in stored["metadata"]
    assert stored["metadata"]["generation"] == 1
    assert _rv(stored) > _rv(created)


def test_a_patch_of_the_main_resource_keeps_the_status(server: KubeAPIServer, client: httpx.Client) -> None:
    server.create(_taskrun("tr-a", status={"podName": "tr-a-pod"}))
    response = client.patch(
        f"{TASKRUNS}/tr-a",
        headers=MERGE,
        json={
            "metadata": {"annotations": {"signed-entrypoint.dev/verdict": "verified"}},
            "spec": {"timeout": "1h"},
            "status": {"podName": "forged"},
        },
    )
    assert response.status_code == 200, response.text
    stored = response.json()
    assert stored["status"] == {"podName": "tr-a-pod"}
    assert stored["metadata"]["annotations"] == {"signed-entrypoint.dev/verdict": "verified"}
    assert stored["spec"] == {"taskRef": {"name": "build"}, "timeout": "1h"}
    assert stored["metadata"]["generation"] == 2  # the spec changed


def test_a_merge_patch_null_deletes_and_lists_replace(server: KubeAPIServer, client: httpx.Client) -> None:
    server.create(
        {
            **_taskrun("tr-a"),
            "metadata": {"name": "tr-a", "namespace": NS, "annotations": {"keep": "1", "drop": "2"}},
            "spec": {"params": [{"name": "a"}, {"name": "b"}]},
        }
    )
    response = client.patch(
        f"{TASKRUNS}/tr-a",
        headers=MERGE,
        json={"metadata": {"annotations": {"drop": None}}, "spec": {"params": [{"name": "c"}]}},
    )
    assert response.status_code == 200
    assert response.json()["metadata"]["annotations"] == {"keep": "1"}
    assert response.json()["spec"] == {"params": [{"name": "c"}]}


def test_a_json_patch_applies_when_its_test_holds(server: KubeAPIServer, client: httpx.Client) -> None:
    server.create(_taskrun("tr-a"))
    response = client.patch(
        f"{TASKRUNS}/tr-a",
        headers=JSON_PATCH,
        content=json.dumps(
            [
                {"op": "test", "path": "/spec/taskRef/name", "value": "build"},
                {"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}},
                {"op": "replace", "path": "/spec/taskRef/name", "value": "deploy"},
            ]
        ),
    )
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["taskRef"] == {"name": "deploy"}
    assert response.json()["metadata"]["labels"] == {"a/b": "c"}


def test_a_json_patch_whose_test_fails_is_invalid_and_changes_nothing(
    server: KubeAPIServer, client: httpx.Client
) -> None:
    before = server.create(_taskrun("tr-a"))
    response = client.patch(
        f"{TASKRUNS}/tr-a",
        headers=JSON_PATCH,
        content=json.dumps(
            [
                {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
                {"op": "test", "path": "/spec/taskRef/name", "value": "other"},
            ]
        ),
    )
    body = _status(response, 422, "Invalid", "the server rejected our request due to an error in our request")
    assert body["details"]["causes"] == [
        {
            "reason": "UnexpectedServerResponse",
            "message": "testing value /spec/taskRef/name failed: test failed",
        }
    ]
    assert server.get_object(f"{TASKRUNS}/tr-a") == before


def test_a_strategic_merge_patch_of_a_custom_resource_is_unsupported(
    server: KubeAPIServer, client: httpx.Client
) -> None:
    server.create(_taskrun("tr-a"))
    response = client.patch(
        f"{TASKRUNS}/tr-a",
        headers={"Content-Type": "application/strategic-merge-patch+json"},
        json={"metadata": {"labels": {"a": "b"}}},
    )
    _status(response, 415, "UnsupportedMediaType")


def test_a_write_with_a_stale_resource_version_is_a_conflict(
    server: KubeAPIServer, client: httpx.Client
) -> None:
    read = server.create(_taskrun("tr-a"))
    server.update_status(NS, "tr-a", {"podName": "tr-a-pod"})  # Tekton writes meanwhile
    stale = {"metadata": {"resourceVersion": read["metadata"]["resourceVersion"]}, "status": {"x": "y"}}
    for path in (f"{TASKRUNS}/tr-a/status", f"{TASKRUNS}/tr-a"):
        body = _status(
            client.patch(path, headers=MERGE, json=stale), 409, "Conflict", CONFLICT.format("tr-a")
        )
        assert body["details"] == {"name": "tr-a", "group": "tekton.dev", "kind": "taskruns"}
    assert server.get_object(f"{TASKRUNS}/tr-a")["status"] == {"podName": "tr-a-pod"}


def test_a_patch_that_changes_nothing_keeps_the_resource_version(
    server: KubeAPIServer, client: httpx.Client, watch: Any
) -> None:
    created = server.create(_taskrun("tr-a", status={"podName": "p"}))
    rv = created["metadata"]["resourceVersion"]
    w = watch(f"{TASKRUNS}?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    for path, patch in (
        (f"{TASKRUNS}/tr-a", {"metadata": {"resourceVersion": rv}, "spec": {"taskRef": {"name": "build"}}}),
        (f"{TASKRUNS}/tr-a/status", {"status": {"podName": "p"}}),
    ):
        response = client.patch(path, headers=MERGE, json=patch)
        assert response.status_code == 200
        assert response.json()["metadata"]["resourceVersion"] == rv
    assert server.update_status(NS, "tr-a", {"podName": "p"})["metadata"]["resourceVersion"] == rv
    assert server.resource_version == rv
    assert w.ends_within(3.0)
    assert w.events.empty()  # nothing was written, so nothing was seen


# -- leases and events ----------------------------------------------------------------------------------


def test_leases_are_created_once_and_updated_with_their_resource_version(client: httpx.Client) -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "controller", "namespace": NS},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    }
    created = client.post(LEASES, json=lease)
    assert created.status_code == 201
    _status(
        client.post(LEASES, json=lease),
        409,
        "AlreadyExists",
        'leases.coordination.k8s.io "controller" already exists',
    )
    read = client.get(f"{LEASES}/controller").json()
    renewed = client.put(
        f"{LEASES}/controller", json={**read, "spec": {**read["spec"], "holderIdentity": "b"}}
    )
    assert renewed.status_code == 200
    assert renewed.json()["spec"]["holderIdentity"] == "b"
    assert _rv(renewed.json()) > _rv(read)
    body = _status(
        client.put(f"{LEASES}/controller", json={**read, "spec": {**read["spec"], "holderIdentity": "c"}}),
        409,
        "Conflict",
        'Operation cannot be fulfilled on leases.coordination.k8s.io "controller": the object has been'
        " modified; please apply your changes to the latest version and try again",
    )
    assert body["details"] == {"name": "controller", "group": "coordination.k8s.io", "kind": "leases"}
    _status(client.put(f"{LEASES}/missing", json={**read, "metadata": {"name": "missing"}}), 404, "NotFound")


def test_events_take_a_generated_name(server: KubeAPIServer, client: httpx.Client) -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "tr-a."},
        "involvedObject": {"kind": "TaskRun", "name": "tr-a", "namespace": NS},
        "type": "Warning",
        "reason": "TaskRunVerificationFailed",
    }
    names = set()
    for _ in range(2):
        response = client.post(EVENTS, json=event)
        assert response.status_code == 201, response.text
        name = response.json()["metadata"]["name"]
        assert name.startswith("tr-a.")
        assert len(name) == len("tr-a.") + 5
        names.add(name)
    assert len(names) == 2
    assert {e["metadata"]["name"] for e in server.events(NS)} == names
    assert server.events(OTHER_NS) == []
    listed = client.get(EVENTS).json()
    assert listed["kind"] == "EventList"
    assert {i["metadata"]["name"] for i in listed["items"]} == names
    nameless = client.post(EVENTS, json={**event, "metadata": {}})
    _status(
        nameless,
        422,
        "Invalid",
        'Event "" is invalid: metadata.name: Required value: name or generateName is required',
    )


# -- who may ---------------------------------------------------------------------------------------------


def test_forbid_refuses_in_the_rbac_wording_until_allowed_again(
    server: KubeAPIServer, client: httpx.Client
) -> None:
    server.create(_taskrun("tr-a"))
    server.forbid("patch", "taskruns/status")
    server.forbid("get", "pods", namespace=NS)
    body = _status(
        client.patch(f"{TASKRUNS}/tr-a/status", headers=MERGE, json={"status": {}}),
        403,
        "Forbidden",
        f'taskruns.tekton.dev "tr-a" is forbidden: User "system:serviceaccount:{NS}:{SA}" cannot patch'
        f' resource "taskruns/status" in API group "tekton.dev" in the namespace "{NS}"',
    )
    assert body["details"] == {"name": "tr-a", "group": "tekton.dev", "kind": "taskruns"}
    assert client.patch(f"{TASKRUNS}/tr-a", headers=MERGE, json={"metadata": {}}).status_code == 200
    _status(
        client.get(f"{PODS}/{POD}"),
        403,
        "Forbidden",
        f'pods "{POD}" is forbidden: User "system:serviceaccount:{NS}:{SA}" cannot get resource "pods"'
        f' in API group "" in the namespace "{NS}"',
    )
    server.forbid("list", "*")
    _status(
        client.get(ALL_TASKRUNS),
        403,
        "Forbidden",
        f'taskruns.tekton.dev is forbidden: User "system:serviceaccount:{NS}:{SA}" cannot list resource'
        ' "taskruns" in API group "tekton.dev" at the cluster scope',
    )
    server.allow_all()
    assert client.get(f"{PODS}/{POD}").status_code == 200
    assert client.patch(f"{TASKRUNS}/tr-a/status", headers=MERGE, json={"status": {}}).status_code == 200


def test_every_object_request_needs_a_token_for_the_api(
    server: KubeAPIServer, ca_file: Path, client: httpx.Client
) -> None:
    # As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py): a token that fails is 401,
    # without WWW-Authenticate; no token at all is the anonymous user, whom RBAC grants nothing (403).
    foreign = server.issue_token(NS, SA, POD, audiences=["not-the-api"])
    for token in ("garbage", foreign):
        with _client(server, ca_file, token) as unauthenticated:
            for response in (unauthenticated.get(TASKRUNS), unauthenticated.get(f"{TASKRUNS}?watch=true")):
                _status(response, 401, "Unauthorized")
                assert "WWW-Authenticate" not in response.headers
    with _client(server, ca_file, None) as anonymous:
        for verb, response in (
            ("list", anonymous.get(TASKRUNS)),
            ("watch", anonymous.get(f"{TASKRUNS}?watch=true")),
        ):
            _status(response, 403, "Forbidden")
            assert response.json()["message"] == (
                f'taskruns.tekton.dev is forbidden: User "system:anonymous" cannot {verb} resource'
                f' "taskruns" in API group "tekton.dev" in the namespace "{NS}"'
            )
    assert client.get(TASKRUNS).status_code == 200


# -- fault knobs -----------------------------------------------------------------------------------------


def test_fail_next_and_unauthorized_apply_to_the_object_endpoints(
    server: KubeAPIServer, client: httpx.Client, watch: Any
) -> None:
    server.fail_next(2, 503)
    _status(client.get(TASKRUNS), 503, "ServiceUnavailable")
    failed = watch(f"{TASKRUNS}?watch=true")
    assert failed.status_code == 503
    assert client.get(TASKRUNS).status_code == 200
    server.unauthorized = True
    _status(client.post(LEASES, json={"metadata": {"name": "x"}}), 401, "Unauthorized")
    server.unauthorized = False
    with pytest.raises(KeyError):
        server.get_object(f"{LEASES}/x")  # the refused create stored nothing
