"""A MongoDB stand-in for the tests: a real wire-protocol server on 127.0.0.1 backed by mongomock.

Why: no MongoDB server can be installed on the build machines (it is in neither Debian, PyPI
nor npm), yet the Mongo backend must be tested *through pymongo*, not against a fake client.
This server speaks the MongoDB wire protocol (the legacy ``OP_QUERY`` handshake with its
``OP_REPLY``, and ``OP_MSG`` with document sequences for everything after it), decodes the
BSON pymongo sends with pymongo's own ``bson`` package, and executes the commands on
mongomock's in-memory engine, which implements the query and update languages. So the tests
exercise pymongo's real BSON encoding (a numpy value fails in the encoder exactly as it would
against mongod), its URI parsing, server selection, connection pool, handshake, sessions,
cursors (``getMore``/``killCursors``), write-error handling (``E11000`` becomes a real
``DuplicateKeyError``) and timeouts, all over real TCP sockets, from several threads and
several processes at once.

``mockupdb`` (also installed) was considered: it parses the same messages but is built to
script replies one request at a time from the test thread; executing every command on an
engine needs the dispatch below anyway, and its ~2,000 lines would be a second undeclared
dependency for about 100 lines of framing.

What it does NOT check (use ``ANFE_TEST_MONGODB_URI`` to run the same tests on a real mongod):
the real server's storage engine, query planner and index use (indexes are honoured only for
uniqueness), its exact error codes and messages beyond ``E11000``, write concerns and
journaling, replica sets, retryable writes, transactions, authentication and TLS, compression,
document-size limits, collations, and mongomock's gaps in the query language. Commands are
executed one at a time under a lock, which is at least as strict as mongod's document-level
atomicity (every single command is atomic; a sequence of commands is not).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import socket
import socketserver
import struct
import threading
from collections import Counter
from typing import Any, Callable, Iterable

import bson
import mongomock
from bson.int64 import Int64
from pymongo import ReturnDocument
from pymongo.errors import OperationFailure

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
_CHECKSUM_PRESENT, _MORE_TO_COME = 1 << 0, 1 << 1
_HEADER = struct.Struct("<iiii")
#: What the stand-in claims to be: MongoDB 6.0 (wire version 17).
VERSION, WIRE_VERSION = "6.0.0-standin", 17
_MAX_BATCH_BYTES = 16 * 1024 * 1024
_DEFAULT_FIRST_BATCH = 101


class CommandError(Exception):
    """A command failed: becomes ``{ok: 0, errmsg, code}`` like a real server's answer."""

    def __init__(self, message: str, code: int = 2, code_name: str = "BadValue") -> None:
        super().__init__(message)
        self.code, self.code_name = code, code_name


class MongoStandIn:
    """The server: ``start()`` on a free loopback port, ``uri(db)``, ``stop()``; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._engine = mongomock.MongoClient()
        self._lock = threading.Lock()
        self._cursors: dict[int, tuple[str, list[dict]]] = {}
        self._cursor_ids = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._sockets: set[socket.socket] = set()
        #: How many times each command arrived (tests check the backend really used the wire).
        self.commands: Counter[str] = Counter()
        self._server = _TCPServer((host, port), _Connection)
        self._server.standin = self
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) it listens on."""
        return self._server.server_address[:2]

    def uri(self, database: str = "") -> str:
        """``mongodb://127.0.0.1:<port>/<database>``."""
        host, port = self.address
        return f"mongodb://{host}:{port}/{database}"

    def start(self) -> "MongoStandIn":
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mongo-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, and close every open client connection."""
        self._server.shutdown()
        self._server.server_close()
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "MongoStandIn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch -------------------------------------------------------------------------
    def execute(self, body: dict, connection_id: int) -> dict:
        """Run one command document; always returns a reply document (``ok`` 1 or 0)."""
        name = next(iter(body), "")
        self.commands[name] += 1
        handler: Callable[[dict, str], dict] | None = getattr(
            self, f"_cmd_{name.lower()}", None
        )
        try:
            if name.lower() in ("hello", "ismaster"):
                return self._hello(name, connection_id)
            if handler is None:
                raise CommandError(f"no such command: '{name}'", 59, "CommandNotFound")
            with self._lock:
                reply = handler(body, body.get("$db", "admin"))
        except CommandError as exc:
            return {"ok": 0.0, "errmsg": str(exc), "code": exc.code, "codeName": exc.code_name}
        except OperationFailure as exc:
            return {"ok": 0.0, "errmsg": str(exc), "code": exc.code or 2, "codeName": "BadValue"}
        except NotImplementedError as exc:
            return {
                "ok": 0.0,
                "errmsg": f"the mongomock stand-in does not implement this: {exc}",
                "code": 115,
                "codeName": "CommandNotSupported",
            }
        return {**reply, "ok": 1.0}

    def _hello(self, name: str, connection_id: int) -> dict:
        primary = "isWritablePrimary" if name == "hello" else "ismaster"
        return {
            "helloOk": True,
            primary: True,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "localTime": _dt.datetime.now(_dt.timezone.utc),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": connection_id,
            "minWireVersion": 0,
            "maxWireVersion": WIRE_VERSION,
            "readOnly": False,
            "ok": 1.0,
        }

    def _col(self, db: str, name: Any) -> Any:
        if not isinstance(name, str) or not name:
            raise CommandError(f"bad collection name {name!r}", 73, "InvalidNamespace")
        return self._engine[db][name]

    def _cursor_reply(self, ns: str, docs: list[dict], batch_size: int | None, single: bool = False) -> dict:
        first, rest = _batch(docs, batch_size if batch_size is not None else _DEFAULT_FIRST_BATCH)
        cursor_id = 0
        if rest and not single:
            cursor_id = next(self._cursor_ids)
            self._cursors[cursor_id] = (ns, rest)
        return {"cursor": {"firstBatch": first, "id": Int64(cursor_id), "ns": ns}}

    # -- commands (run under the lock) -----------------------------------------------------
    def _cmd_ping(self, body: dict, db: str) -> dict:
        return {}

    def _cmd_buildinfo(self, body: dict, db: str) -> dict:
        return {"version": VERSION, "versionArray": [6, 0, 0, 0], "maxBsonObjectSize": 16 * 1024 * 1024}

    def _cmd_endsessions(self, body: dict, db: str) -> dict:
        return {}

    def _cmd_insert(self, body: dict, db: str) -> dict:
        col = self._col(db, body["insert"])
        return _write_loop(body.get("documents", []), body.get("ordered", True), lambda doc: (col.insert_one(doc), 1)[1])

    def _cmd_update(self, body: dict, db: str) -> dict:
        col = self._col(db, body["update"])
        upserted: list[dict] = []
        counts = {"n": 0, "nModified": 0}

        def one(index: int, spec: dict) -> int:
            query, update, upsert = spec.get("q", {}), spec["u"], bool(spec.get("upsert"))
            operators = isinstance(update, list) or (update and all(k.startswith("$") for k in update))
            if not operators:
                if spec.get("multi"):
                    raise CommandError("multi update is not supported for replacement-style update", 9, "FailedToParse")
                result = col.replace_one(query, update, upsert=upsert)
            elif spec.get("multi"):
                result = col.update_many(query, update, upsert=upsert)
            else:
                result = col.update_one(query, update, upsert=upsert)
            counts["nModified"] += result.modified_count
            if result.upserted_id is not None:
                upserted.append({"index": index, "_id": result.upserted_id})
                return 1
            return result.matched_count

        reply = _write_loop(list(enumerate(body.get("updates", []))), body.get("ordered", True), lambda pair: one(*pair))
        reply["nModified"] = counts["nModified"]
        if upserted:
            reply["upserted"] = upserted
        return reply

    def _cmd_delete(self, body: dict, db: str) -> dict:
        col = self._col(db, body["delete"])

        def one(spec: dict) -> int:
            if spec.get("limit", 0) == 1:
                return col.delete_one(spec.get("q", {})).deleted_count
            return col.delete_many(spec.get("q", {})).deleted_count

        return _write_loop(body.get("deletes", []), body.get("ordered", True), one)

    def _cmd_find(self, body: dict, db: str) -> dict:
        col = self._col(db, body["find"])
        cursor = col.find(body.get("filter") or {}, body.get("projection") or None)
        if body.get("sort"):
            cursor = cursor.sort(list(body["sort"].items()))
        if body.get("skip"):
            cursor = cursor.skip(int(body["skip"]))
        if body.get("limit"):
            cursor = cursor.limit(abs(int(body["limit"])))
        return self._cursor_reply(f"{db}.{col.name}", list(cursor), body.get("batchSize"), bool(body.get("singleBatch")))

    def _cmd_aggregate(self, body: dict, db: str) -> dict:
        col = self._col(db, body["aggregate"])
        docs = list(col.aggregate(list(body.get("pipeline", []))))
        return self._cursor_reply(f"{db}.{col.name}", docs, (body.get("cursor") or {}).get("batchSize"))

    def _cmd_getmore(self, body: dict, db: str) -> dict:
        cursor_id = int(body["getMore"])
        if cursor_id not in self._cursors:
            raise CommandError(f"cursor id {cursor_id} not found", 43, "CursorNotFound")
        ns, docs = self._cursors.pop(cursor_id)
        batch, rest = _batch(docs, body.get("batchSize"))
        if rest:
            self._cursors[cursor_id] = (ns, rest)
        else:
            cursor_id = 0
        return {"cursor": {"nextBatch": batch, "id": Int64(cursor_id), "ns": ns}}

    def _cmd_killcursors(self, body: dict, db: str) -> dict:
        ids = [int(i) for i in body.get("cursors", [])]
        killed = [Int64(i) for i in ids if self._cursors.pop(i, None) is not None]
        return {"cursorsKilled": killed, "cursorsNotFound": [Int64(i) for i in ids if Int64(i) not in killed]}

    def _cmd_count(self, body: dict, db: str) -> dict:
        col = self._col(db, body["count"])
        options = {k: int(body[k]) for k in ("skip", "limit") if body.get(k)}
        return {"n": col.count_documents(body.get("query") or {}, **options)}

    def _cmd_distinct(self, body: dict, db: str) -> dict:
        col = self._col(db, body["distinct"])
        return {"values": col.distinct(body["key"], body.get("query") or {})}

    def _cmd_findandmodify(self, body: dict, db: str) -> dict:
        col = self._col(db, body["findAndModify"])
        query, sort = body.get("query") or {}, list((body.get("sort") or {}).items()) or None
        projection = body.get("fields") or None
        existed = col.find_one(query, sort=sort) is not None
        if body.get("remove"):
            value = col.find_one_and_delete(query, projection=projection, sort=sort)
            return {"lastErrorObject": {"n": int(value is not None)}, "value": value}
        update, upsert = body.get("update"), bool(body.get("upsert"))
        after = ReturnDocument.AFTER if body.get("new") else ReturnDocument.BEFORE
        operators = isinstance(update, list) or all(k.startswith("$") for k in update)
        method = col.find_one_and_update if operators else col.find_one_and_replace
        value = method(query, update, projection=projection, sort=sort, upsert=upsert, return_document=after)
        last: dict[str, Any] = {"n": int(existed or upsert), "updatedExisting": existed}
        if upsert and not existed:
            found = col.find_one(query, sort=sort)
            if found is not None:
                last["upserted"] = found["_id"]
        return {"lastErrorObject": last, "value": value}

    def _cmd_createindexes(self, body: dict, db: str) -> dict:
        col = self._col(db, body["createIndexes"])
        created = col.name not in self._engine[db].list_collection_names()
        before = len(col.index_information()) if not created else 1
        for spec in body.get("indexes", []):
            options = {k: v for k, v in spec.items() if k in ("name", "unique", "sparse", "partialFilterExpression")}
            col.create_index(list(spec["key"].items()), **options)
        return {
            "createdCollectionAutomatically": created,
            "numIndexesBefore": before,
            "numIndexesAfter": len(col.index_information()),
        }

    def _cmd_listindexes(self, body: dict, db: str) -> dict:
        col = self._col(db, body["listIndexes"])
        if col.name not in self._engine[db].list_collection_names():
            raise CommandError(f"ns does not exist: {db}.{col.name}", 26, "NamespaceNotFound")
        docs = [
            {"v": 2, "key": dict(info["key"]), "name": name, **{k: v for k, v in info.items() if k not in ("key", "v")}}
            for name, info in col.index_information().items()
        ]
        return self._cursor_reply(f"{db}.$cmd.listIndexes", docs, (body.get("cursor") or {}).get("batchSize"))

    def _cmd_listcollections(self, body: dict, db: str) -> dict:
        wanted = (body.get("filter") or {}).get("name")
        names = [n for n in self._engine[db].list_collection_names() if wanted in (None, n)]
        docs = [{"name": n, "type": "collection", "options": {}, "info": {"readOnly": False}} for n in names]
        return self._cursor_reply(f"{db}.$cmd.listCollections", docs, (body.get("cursor") or {}).get("batchSize"))

    def _cmd_listdatabases(self, body: dict, db: str) -> dict:
        names = self._engine.list_database_names()
        return {"databases": [{"name": n, "sizeOnDisk": 0, "empty": False} for n in names], "totalSize": 0}

    def _cmd_create(self, body: dict, db: str) -> dict:
        self._engine[db].create_collection(body["create"])
        return {}

    def _cmd_drop(self, body: dict, db: str) -> dict:
        self._engine[db].drop_collection(body["drop"])
        return {"ns": f"{db}.{body['drop']}"}

    def _cmd_dropdatabase(self, body: dict, db: str) -> dict:
        self._engine.drop_database(db)
        return {"dropped": db}


def _batch(docs: list[dict], size: int | None) -> tuple[list[dict], list[dict]]:
    """Split off the next batch: at most ``size`` documents (0/None: all) and 16 MiB, at least one."""
    limit = len(docs) if not size else int(size)
    taken, total = 0, 0
    for doc in docs[:limit]:
        total += len(bson.encode(doc))
        if taken and total > _MAX_BATCH_BYTES:
            break
        taken += 1
    return docs[:taken], docs[taken:]


def _write_loop(items: Iterable[Any], ordered: bool, apply: Callable[[Any], int]) -> dict:
    """Apply each write statement; failures become ``writeErrors`` (ordered writes stop at the first)."""
    n, errors = 0, []
    for index, item in enumerate(items):
        try:
            n += apply(item)
        except (OperationFailure, CommandError) as exc:
            code = exc.code if isinstance(exc, CommandError) else (exc.code or 2)
            message = str(exc)
            if code == 11000 and "E11000" not in message:
                message = f"E11000 duplicate key error: {message}"
            errors.append({"index": index, "code": code, "errmsg": message})
            if ordered:
                break
    reply: dict[str, Any] = {"n": n}
    if errors:
        reply["writeErrors"] = errors
    return reply


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    standin: MongoStandIn


class _Connection(socketserver.BaseRequestHandler):
    """One client connection: read a message, execute, reply; until the client hangs up."""

    def handle(self) -> None:
        standin: MongoStandIn = self.server.standin  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        standin._sockets.add(sock)
        connection_id = next(standin._connection_ids)
        try:
            while True:
                header = _read_exactly(sock, _HEADER.size)
                if header is None:
                    return
                length, request_id, _, opcode = _HEADER.unpack(header)
                payload = _read_exactly(sock, length - _HEADER.size)
                if payload is None:
                    return
                if opcode == OP_MSG:
                    flags, body = _parse_op_msg(payload)
                    reply = standin.execute(body, connection_id)
                    if not flags & _MORE_TO_COME:
                        sock.sendall(_op_msg(request_id, reply))
                elif opcode == OP_QUERY:
                    reply = standin.execute(_parse_op_query(payload), connection_id)
                    sock.sendall(_op_reply(request_id, reply))
                else:
                    return  # unsupported legacy opcode: hang up, as mongod >= 6 does
        except (ConnectionError, OSError):
            return
        finally:
            standin._sockets.discard(sock)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, missing = [], size
    while missing:
        chunk = sock.recv(min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _parse_op_msg(payload: bytes) -> tuple[int, dict]:
    """flags and the command: the kind-0 body with each kind-1 document sequence added as a list."""
    (flags,) = struct.unpack_from("<I", payload)
    end = len(payload) - (4 if flags & _CHECKSUM_PRESENT else 0)
    pos, body, sequences = 4, None, {}
    while pos < end:
        kind = payload[pos]
        pos += 1
        if kind == 0:
            (size,) = struct.unpack_from("<i", payload, pos)
            body = bson.decode(payload[pos : pos + size])
            pos += size
        elif kind == 1:
            (size,) = struct.unpack_from("<i", payload, pos)
            section_end = pos + size
            name_end = payload.index(b"\x00", pos + 4)
            identifier = payload[pos + 4 : name_end].decode()
            sequences[identifier] = bson.decode_all(payload[name_end + 1 : section_end])
            pos = section_end
        else:
            raise ValueError(f"unknown OP_MSG section kind {kind}")
    if body is None:
        raise ValueError("OP_MSG without a body section")
    body.update(sequences)
    return flags, body


def _parse_op_query(payload: bytes) -> dict:
    name_end = payload.index(b"\x00", 4)
    pos = name_end + 1 + 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", payload, pos)
    body = bson.decode(payload[pos : pos + size])
    if "$query" in body:  # the legacy wrapping that carries a read preference
        body = body["$query"]
    collection = payload[4:name_end].decode()
    body.setdefault("$db", collection.split(".", 1)[0])
    return body


_request_ids = itertools.count(1)


def _op_msg(response_to: int, doc: dict) -> bytes:
    data = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
    return _HEADER.pack(_HEADER.size + len(data), next(_request_ids), response_to, OP_MSG) + data


def _op_reply(response_to: int, doc: dict) -> bytes:
    data = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(doc)
    return _HEADER.pack(_HEADER.size + len(data), next(_request_ids), response_to, OP_REPLY) + data


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in in the foreground (``python tests/mongo_standin.py --port 27017``) to try
    the CLI's ``--db mongodb://...`` by hand, or to aim ``ANFE_TEST_MONGODB_URI`` at it."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    args = parser.parse_args(argv)
    with MongoStandIn(args.host, args.port) as server:
        print(f"MongoDB stand-in listening on {server.uri()} (Ctrl-C stops it)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
