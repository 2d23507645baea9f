"""Leader election over the API double's Leases: one holder at a time, takeover only after the
lease expired, and a release that hands over at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from entrypoint._internal.kube.client import KubeClient
from entrypoint.controller.api import ControllerAPI
from entrypoint.controller.leader import LeaseElector
from entrypoint.testing.kube import KubeAPIServer

NS, NAME = "signed-entrypoint", "signed-entrypoint-controller"


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def api(tmp_path: object) -> Iterator[ControllerAPI]:
    with KubeAPIServer() as kube:
        kube.add_service_account(NS, "controller")
        token = f"{tmp_path}/token"
        with open(token, "w") as f:
            f.write(kube.issue_token(NS, "controller"))
        ca = f"{tmp_path}/ca.crt"
        with open(ca, "wb") as f:
            f.write(kube.ca_pem)
        yield ControllerAPI(KubeClient(kube.url, token_file=token, ca_file=ca, keep_alive=True))


def elector(api: ControllerAPI, identity: str, clock: Clock) -> LeaseElector:
    return LeaseElector(api, NS, NAME, identity, lease_seconds=15, renew_deadline=10, clock=clock)


def test_one_holder_until_the_lease_expires(api: ControllerAPI) -> None:
    clock = Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew() and a.is_leader()
    assert not b.try_acquire_or_renew() and not b.is_leader()
    clock.now += dt.timedelta(seconds=14)
    assert not b.try_acquire_or_renew(), "taken before the lease expired"
    assert a.try_acquire_or_renew()  # renewed: b waits a whole duration again
    clock.now += dt.timedelta(seconds=14)
    assert not b.try_acquire_or_renew()
    clock.now += dt.timedelta(seconds=2)  # a stopped renewing 16 s ago
    assert b.try_acquire_or_renew() and b.is_leader()
    lease = api.get_lease(NS, NAME)["spec"]
    assert (lease["holderIdentity"], lease["leaseTransitions"]) == ("b", 1)
    assert not a.try_acquire_or_renew() and not a.is_leader()


def test_a_stale_write_loses_the_race(api: ControllerAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    clock.now += dt.timedelta(seconds=20)
    stale = api.get_lease(NS, NAME)
    assert b.try_acquire_or_renew()
    # a read before b's write, and writes after: the resourceVersion it carries is refused (409).
    with monkeypatch.context() as m:
        m.setattr(api, "get_lease", lambda namespace, name: stale)
        assert not a.try_acquire_or_renew() and not a.is_leader()
    assert api.get_lease(NS, NAME)["spec"]["holderIdentity"] == "b"


def test_release_hands_over_at_once(api: ControllerAPI) -> None:
    clock = Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    a.release()
    assert not a.is_leader()
    assert b.try_acquire_or_renew(), "a released lease is free without waiting its duration"
