"""TAXII 2.1 specifics, read with taxii2-client: pagination, added_after, access control."""

import asyncio

import pytest
import requests
from taxii2client.exceptions import TAXIIServiceException

from connectors.secrets import Secret
from connectors.taxii import TaxiiConnector, collection_id, format_added, parse_added
from tests.integration.connectors.harnesses import TAXII_PASSWORD, TaxiiHarness, run_with
from tests.unit.connectors.deliveries import deliveries


def with_taxii(tls, tmp_path, body):
    return run_with(TaxiiHarness, tls, tmp_path, body)


def test_pages_are_exclusive_and_complete(tls, tmp_path):
    async def body(harness):
        connector = harness.connector()
        for start in range(0, 250, 50):
            await connector.send_batch(deliveries(50, start=start))
        return await harness.objects()

    objects = with_taxii(tls, tmp_path, body)
    alerts = [o for o in objects if o["type"] != "identity"]
    assert len(alerts) == 250 and len({o["id"] for o in objects}) == len(objects)


def test_added_after_the_last_date_returns_only_newer_objects(tls, tmp_path):
    async def body(harness):
        connector = harness.connector()
        await connector.send_batch(deliveries(30))
        collection = harness.collection()
        first = await asyncio.to_thread(collection.get_objects)
        last = first["objects"][-1]
        manifest = await asyncio.to_thread(collection.get_manifest)
        stamp = manifest["objects"][-1]["date_added"]
        again = await asyncio.to_thread(collection.get_objects, added_after=stamp)
        later = deliveries(5, start=30)
        await connector.send_batch(later)
        newer = await asyncio.to_thread(collection.get_objects, added_after=stamp)
        return first, last, again, newer, later

    first, last, again, newer, later = with_taxii(tls, tmp_path, body)
    assert len(first["objects"]) == 31 and first["more"] is False
    assert again == {"more": False}
    assert [o["x_cwn_idempotency_key"] for o in newer["objects"]] == [d.key for d in later]
    assert last["id"] not in {o["id"] for o in newer["objects"]}


def test_a_redelivery_adds_nothing(tls, tmp_path):
    async def body(harness):
        connector = harness.connector()
        batch = deliveries(10)
        await connector.send_batch(batch)
        await connector.send_batch(batch)
        return await harness.objects()

    assert len(with_taxii(tls, tmp_path, body)) == 11


def test_a_member_sees_only_its_own_collection(tls, tmp_path):
    async def body(harness):
        harness.credentials.grant("m2", "Member Two", Secret("m2-taxii", ("m2-password",)))
        await TaxiiConnector(harness.store, "m2").send_batch(deliveries(3, member="m2"))
        base = f"https://localhost:{harness.server.port}/cwn"
        session = requests.Session()
        session.trust_env = False
        session.verify = str(harness.tls.ca_file)
        accept = {"Accept": "application/taxii+json;version=2.1"}

        def get(path, auth=("m1", TAXII_PASSWORD), headers=accept):
            return session.get(base + path, auth=auth, headers=headers, timeout=10)

        return await asyncio.to_thread(
            lambda: {
                "list": get("/collections/").json(),
                "other": get(f"/collections/{collection_id('m2')}/objects/").status_code,
                "wrong password": get("/collections/", auth=("m1", "m2-password")).status_code,
                "no auth": get("/collections/", auth=None).status_code,
                "unknown user": get("/collections/", auth=("nobody", "x")).status_code,
                "write": session.post(
                    f"{base}/collections/{collection_id('m1')}/objects/",
                    auth=("m1", TAXII_PASSWORD),
                    headers=accept,
                ).status_code,
                "bad accept": get("/collections/", headers={"Accept": "text/html"}).status_code,
                "bad limit": get(f"/collections/{collection_id('m1')}/objects/?limit=0").status_code,
                "bad date": get(
                    f"/collections/{collection_id('m1')}/objects/?added_after=yesterday"
                ).status_code,
            }
        )

    seen = with_taxii(tls, tmp_path, body)
    assert [c["id"] for c in seen["list"]["collections"]] == [collection_id("m1")]
    assert seen["list"]["collections"][0]["can_write"] is False
    assert seen["other"] == 404
    assert seen["wrong password"] == seen["no auth"] == seen["unknown user"] == 401
    assert seen["write"] == 403 and seen["bad accept"] == 406
    assert seen["bad limit"] == seen["bad date"] == 400


def test_the_client_gets_discovery_and_its_api_root(tls, tmp_path, monkeypatch):
    from taxii2client.v21 import Server

    # The client opens new sessions for API roots, where requests prefers these to its own CA.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    async def body(harness):
        url = f"https://localhost:{harness.server.port}/taxii2/"
        server = Server(url, user="m1", password=TAXII_PASSWORD, verify=str(harness.tls.ca_file))

        def read():
            root = server.default
            return server.title, [c.id for c in root.collections]

        return await asyncio.to_thread(read)

    title, collections = with_taxii(tls, tmp_path, body)
    assert title == "CWN alert pipeline" and collections == [collection_id("m1")]


def test_a_wrong_password_is_refused_by_the_client_too(tls, tmp_path):
    async def body(harness):
        return await asyncio.to_thread(lambda: harness.collection(password="nope").get_objects())

    with pytest.raises((TAXIIServiceException, requests.HTTPError)):
        with_taxii(tls, tmp_path, body)


def test_timestamps_round_trip_to_the_microsecond():
    for micros in (0, 1, 1_764_410_000_123_456):
        assert parse_added(format_added(micros)) == micros
