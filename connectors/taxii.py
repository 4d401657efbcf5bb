"""A TAXII 2.1 server: one read-only collection per member, fed by the taxii connector.

The connector turns each delivery into a STIX object (`connectors.stix`) and adds it to the
member's collection in a SQLite store; adding the same object again changes nothing, so
retries never duplicate. The server (`TaxiiServer`) serves discovery, one API root (`/cwn/`),
collections, objects, single objects and manifests, with HTTP Basic authentication per member
(user name = member id, password = the target's secret; every value of a rotating secret
works). A member sees its own collection only; any other is 404, as if it did not exist.

Pagination and `added_after` are exclusive and exact: every object gets a `date_added` with
microseconds, strictly increasing across the store, so no two objects share one. A page ends
with `X-TAXII-Date-Added-Last`; asking again with `added_after` set to it returns only newer
objects, never the last one again (clients that loop on a repeated last object do not loop
here). `next` is the same cursor, opaque to the client.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import sqlite3
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from connectors.core import DELIVERED, Delivery, Outcome, Result, all_results
from connectors.secrets import Secret
from connectors.stix import identity, to_stix

MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
API_ROOT = "cwn"
_NAMESPACE = uuid.UUID("0b6f3b3e-6a0f-5d35-8d0c-6c3e1f2a9b47")
_MEMBER = web.RequestKey("member", str)
_ACCEPTABLE = ("application/taxii+json;version=2.1", "application/taxii+json", "*/*", "application/*")


def collection_id(member_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, member_id))


def format_added(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_added(value: str) -> int:
    """Microseconds since the epoch from a TAXII timestamp; ValueError when malformed."""
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


class Store:
    """Objects per collection in SQLite, in the order they were added."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (collection TEXT NOT NULL, added INTEGER NOT NULL, "
            "id TEXT NOT NULL, type TEXT NOT NULL, version TEXT NOT NULL, body BLOB NOT NULL, "
            "PRIMARY KEY (collection, id, version))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_added ON objects (collection, added)")
        row = self._db.execute("SELECT MAX(added) FROM objects").fetchone()
        self._last = row[0] or 0
        # One connection, used from the event loop and from worker threads.
        self._lock = threading.Lock()

    def add(self, collection: str, objects: Sequence[dict[str, Any]]) -> int:
        """Add objects not already there (same id and version); returns how many were new."""
        with self._lock:
            return self._add(collection, objects)

    def _add(self, collection: str, objects: Sequence[dict[str, Any]]) -> int:
        added = 0
        self._db.execute("BEGIN")
        try:
            for obj in objects:
                stamp = max(int(time.time() * 1_000_000), self._last + 1)
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO objects VALUES (?, ?, ?, ?, ?, ?)",
                    (collection, stamp, obj["id"], obj["type"], obj.get("modified", ""), orjson.dumps(obj)),
                )
                if cursor.rowcount:
                    self._last = stamp
                    added += 1
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return added

    def page(
        self,
        collection: str,
        after: int,
        limit: int,
        ids: Sequence[str] = (),
        types: Sequence[str] = (),
    ) -> tuple[list[tuple[int, bytes]], bool]:
        """Up to `limit` (added, body) rows strictly after `after`, and whether more follow."""
        sql = "SELECT added, body FROM objects WHERE collection = ? AND added > ?"
        args: list[Any] = [collection, after]
        if ids:
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            args += ids
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            args += types
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY added LIMIT ?", [*args, limit + 1]).fetchall()
        return rows[:limit], len(rows) > limit

    def count(self, collection: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM objects WHERE collection = ?", (collection,))
            return row.fetchone()[0]

    def close(self) -> None:
        self._db.close()


class Credentials:
    """Who may read which collection: member id -> its secret."""

    def __init__(self) -> None:
        self._secrets: dict[str, Secret] = {}
        self.titles: dict[str, str] = {}

    def grant(self, member_id: str, title: str, secret: Secret) -> None:
        self._secrets[member_id] = secret
        self.titles[member_id] = title

    def revoke(self, member_id: str) -> None:
        self._secrets.pop(member_id, None)
        self.titles.pop(member_id, None)

    def check(self, header: str | None) -> str | None:
        """The member id a Basic `Authorization` header proves, or None."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except ValueError:
            return None
        secret = self._secrets.get(user)
        if secret is None:
            hmac.compare_digest(password, password)  # the same work whether or not the user exists
            return None
        ok = False
        for value in secret.values:
            ok |= hmac.compare_digest(password.encode(), value.encode())
        return user if ok else None


def _taxii(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers={"Content-Type": MEDIA_TYPE, **(headers or {})}
    )


def _error(status: int, title: str, description: str = "") -> web.Response:
    body: dict[str, Any] = {"title": title}
    if description:
        body["description"] = description
    return _taxii(body, status)


class TaxiiServer:
    """The HTTP side: routes, authentication and content negotiation."""

    def __init__(self, store: Store, credentials: Credentials, page_size: int = 100) -> None:
        self.store = store
        self.credentials = credentials
        self._page_size = page_size
        self._runner: web.AppRunner | None = None
        self.port = 0
        app = web.Application(middlewares=[self._guard])
        root = f"/{API_ROOT}"
        app.router.add_get("/taxii2/", self._discovery)
        app.router.add_get(f"{root}/", self._api_root)
        app.router.add_get(f"{root}/collections/", self._collections)
        app.router.add_get(f"{root}/collections/{{cid}}/", self._collection)
        app.router.add_get(f"{root}/collections/{{cid}}/objects/", self._objects)
        app.router.add_get(f"{root}/collections/{{cid}}/objects/{{oid}}/", self._object)
        app.router.add_get(f"{root}/collections/{{cid}}/manifest/", self._manifest)
        app.router.add_post(f"{root}/collections/{{cid}}/objects/", self._read_only)
        self.app = app

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen; returns the port (useful when `port` is 0)."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        server = site._server  # aiohttp keeps the bound sockets there
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        member = self.credentials.check(request.headers.get("Authorization"))
        if member is None:
            response = _error(401, "authentication required")
            response.headers["WWW-Authenticate"] = 'Basic realm="cwn-taxii"'
            return response
        accept = request.headers.get("Accept", "*/*").replace(" ", "")
        if not any(kind in accept for kind in _ACCEPTABLE):
            return _error(406, "not acceptable", f"this server speaks {MEDIA_TYPE}")
        request[_MEMBER] = member
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(404, "not found")
        except web.HTTPMethodNotAllowed:
            return _error(405, "method not allowed")

    async def _discovery(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return _taxii(
            {
                "title": "CWN alert pipeline",
                "description": "Alerts for members of the cyber resilience network.",
                "default": f"{base}/{API_ROOT}/",
                "api_roots": [f"{base}/{API_ROOT}/"],
            }
        )

    async def _api_root(self, request: web.Request) -> web.Response:
        return _taxii(
            {"title": "CWN alerts", "versions": [MEDIA_TYPE], "max_content_length": 10 * 1024 * 1024}
        )

    def _describe(self, member: str) -> dict[str, Any]:
        return {
            "id": collection_id(member),
            "title": f"Alerts for {self.credentials.titles.get(member, member)}",
            "can_read": True,
            "can_write": False,
            "media_types": [STIX_MEDIA_TYPE],
        }

    async def _collections(self, request: web.Request) -> web.Response:
        return _taxii({"collections": [self._describe(request[_MEMBER])]})

    def _own(self, request: web.Request) -> str | None:
        member = request[_MEMBER]
        return member if request.match_info["cid"] == collection_id(member) else None

    async def _collection(self, request: web.Request) -> web.Response:
        member = self._own(request)
        if member is None:
            return _error(404, "no such collection")
        return _taxii(self._describe(member))

    def _query(self, request: web.Request) -> tuple[int, int, list[str], list[str]] | web.Response:
        query = request.query
        try:
            after = parse_added(query["next"]) if "next" in query else 0
            if "added_after" in query:
                after = max(after, parse_added(query["added_after"]))
            limit = min(int(query.get("limit", self._page_size)), self._page_size)
        except ValueError as exc:
            return _error(400, "bad query", str(exc)[:200])
        if limit < 1:
            return _error(400, "bad query", "limit must be at least 1")
        ids = [v for v in query.get("match[id]", "").split(",") if v]
        types = [v for v in query.get("match[type]", "").split(",") if v]
        return after, limit, ids, types

    def _page(self, request: web.Request, ids: list[str] | None = None) -> tuple[Any, ...] | web.Response:
        member = self._own(request)
        if member is None:
            return _error(404, "no such collection")
        parsed = self._query(request)
        if isinstance(parsed, web.Response):
            return parsed
        after, limit, match_ids, types = parsed
        rows, more = self.store.page(collection_id(member), after, limit, ids or match_ids, types)
        headers = {}
        if rows:
            headers = {
                "X-TAXII-Date-Added-First": format_added(rows[0][0]),
                "X-TAXII-Date-Added-Last": format_added(rows[-1][0]),
            }
        return rows, more, headers

    async def _objects(self, request: web.Request) -> web.Response:
        page = self._page(request)
        if isinstance(page, web.Response):
            return page
        rows, more, headers = page
        envelope: dict[str, Any] = {"more": more}
        if more:
            envelope["next"] = format_added(rows[-1][0])
        if rows:
            envelope["objects"] = [orjson.loads(body) for _, body in rows]
        return _taxii(envelope, headers=headers)

    async def _object(self, request: web.Request) -> web.Response:
        page = self._page(request, [request.match_info["oid"]])
        if isinstance(page, web.Response):
            return page
        rows, more, headers = page
        if not rows:
            return _error(404, "no such object")
        return _taxii({"more": more, "objects": [orjson.loads(body) for _, body in rows]}, headers=headers)

    async def _manifest(self, request: web.Request) -> web.Response:
        page = self._page(request)
        if isinstance(page, web.Response):
            return page
        rows, more, headers = page
        entries = []
        for added, body in rows:
            obj = orjson.loads(body)
            entries.append(
                {
                    "id": obj["id"],
                    "date_added": format_added(added),
                    "version": obj.get("modified", obj.get("created")),
                    "media_type": STIX_MEDIA_TYPE,
                }
            )
        envelope: dict[str, Any] = {"more": more}
        if more:
            envelope["next"] = format_added(rows[-1][0])
        if entries:
            envelope["objects"] = entries
        return _taxii(envelope, headers=headers)

    async def _read_only(self, request: web.Request) -> web.Response:
        return _error(403, "read-only collection", "the network publishes; members read")


class TaxiiConnector:
    """Adds one member's deliveries to its collection."""

    name = "taxii"

    def __init__(self, store: Store, member_id: str) -> None:
        self._store = store
        self._collection = collection_id(member_id)
        self._added = 0

    async def open(self) -> None:
        return None

    async def send_batch(self, batch: Sequence[Delivery]) -> list[Result]:
        objects = [to_stix(d) for d in batch]
        if objects:
            objects.insert(0, identity())
        try:
            self._added += await asyncio.to_thread(self._store.add, self._collection, objects)
        except sqlite3.Error as exc:
            return all_results(batch, Result(Outcome.RETRY, f"store: {exc}"[:300]))
        return all_results(batch, DELIVERED)

    async def close(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"connector": self.name, "collection": self._collection, "added": self._added}
