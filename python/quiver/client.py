"""quiver.Client: Quiver's binary protocol from Python (docs/python.md).

    import numpy as np, quiver
    client = quiver.Client("127.0.0.1", 7701)
    hits = client.search("movies", user_vector, k=200, filter={"eq": {"category": 3}})
    hits.ids, hits.scores                       # numpy arrays, best first

Every call takes ``timeout`` (seconds; the client's ``deadline`` by default, retries included).
Calls safe to repeat (reads, upserts, deletes, snapshots) are retried with exponential backoff
and jitter on UNAVAILABLE and RESOURCE_EXHAUSTED until the deadline; the others only when the
request never left. A failed call raises the QuiverError named after its status code
(quiver.errors). A Client is safe to share between threads: each call takes a connection from
its pool (up to ``pool_size`` idle ones are kept) and a connection the server closed while idle
(its idle timeout, a restart) is replaced before a request is written to it.
"""

import itertools
import random
import select
import socket
import threading
import time

import numpy as np

from . import _wire, errors
from .wire import (AddEvents, AssignShard, ClusterInfoRequest, Count, CreateCollection, Delete,
                   DescribeCollection, DropCollection, Get, GetList, GetUser, Health,
                   ListCollections, ListLists, ListPlugins, ListVersions, PutUsers, Reload,
                   Rollback, RunPlugin, Scroll, SearchBatch, Snapshot, Upsert)
from .wire.RequestBody import RequestBody as Body

# Search keywords that leave a search's frame the same shape whatever their values.
_PLAIN = {"ef", "nprobe", "refine", "payload", "min_seq"}

# Calls whose repetition after an unknown outcome could change the result.
_NOT_IDEMPOTENT = {Body.AddEvents, Body.CreateCollection, Body.DropCollection, Body.Reload,
                   Body.Rollback}


class _Connection:
    """One socket speaking the frame protocol, used by one call at a time."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def closed_by_server(self):
        if self.buf:
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def send(self, data, deadline):
        self.sock.settimeout(_left(deadline))
        self.sock.sendall(data)

    def receive(self, deadline):
        """One response frame's body."""
        while True:
            if len(self.buf) >= 4:
                n = _wire.HEADER.unpack_from(self.buf)[0]
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return body
            self.sock.settimeout(_left(deadline))
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _left(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise errors.DeadlineExceeded("deadline exceeded")
    return left


class Client:
    """A pool of connections to one quiverd's binary protocol (TCP ``host``:``port``, or the
    Unix-domain socket ``unix_path``)."""

    def __init__(self, host="127.0.0.1", port=7701, *, unix_path=None, api_key="",
                 pool_size=4, deadline=10.0, connect_timeout=2.0, max_attempts=4,
                 initial_backoff=0.01):
        self.host, self.port, self.unix_path, self.api_key = host, port, unix_path, api_key
        self.pool_size, self.deadline, self.connect_timeout = pool_size, deadline, connect_timeout
        self.max_attempts, self.initial_backoff = max_attempts, initial_backoff
        self._idle = []
        self._lock = threading.Lock()
        self._next_id = 1  # request ids, under _lock
        self._templates = {}  # plain searches' frames by (collection, dim, options)
        self._give(self._open(time.monotonic() + connect_timeout))  # fails early if no server

    def close(self):
        """Closes the idle connections (calls in flight keep theirs until they end)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- connections and attempts ----

    def _open(self, deadline):
        where = self.unix_path or f"{self.host}:{self.port}"
        try:
            if self.unix_path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(min(self.connect_timeout, _left(deadline)))
                sock.connect(self.unix_path)
            else:
                sock = socket.create_connection(
                    (self.host, self.port), timeout=min(self.connect_timeout, _left(deadline)))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except errors.QuiverError:
            raise
        except OSError as e:
            raise errors.Unavailable(f"cannot connect to {where}: {e}") from None
        return _Connection(sock)

    def _reserve(self, n=1):
        """The first of n consecutive request ids no other call uses."""
        with self._lock:
            first, self._next_id = self._next_id, self._next_id + n
        return first

    def _take(self, deadline):
        with self._lock:
            while self._idle:
                c = self._idle.pop()
                if not c.closed_by_server():
                    return c
                c.close()
        return self._open(deadline)

    def _give(self, c):
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(c)
                return
        c.close()

    def _attempt(self, count, blob, deadline):
        """Sends `count` request frames (their bytes end to end in `blob`) on one connection
        and returns their answers by request id.
        Returns (answers, sent, error): error is the transport failure, if any."""
        sent = False
        answers = {}
        try:
            c = self._take(deadline)
        except errors.Unavailable as e:
            return answers, sent, e
        try:
            c.send(blob, deadline)
            sent = True
            while len(answers) < count:
                request_id, answer = _wire.response(c.receive(deadline))
                answers[request_id] = answer
        except errors.DeadlineExceeded as e:
            c.close()
            return answers, sent, e
        except (OSError, ConnectionError) as e:
            c.close()
            if isinstance(e, socket.timeout):
                return answers, sent, errors.DeadlineExceeded("deadline exceeded")
            return answers, sent, errors.Unavailable(f"connection failed: {e}")
        if 0 in answers:
            c.close()  # an answer to a frame the server could not read: not reused
        else:
            self._give(c)
        return answers, sent, None

    def _call(self, body_type, build, timeout=None, frame=None):
        """One call: its answer, or its error raised; retried as the module docstring says.
        build(builder) makes the request's body; or frame(request_id) the whole frame."""
        deadline = time.monotonic() + (timeout or self.deadline)
        backoff = self.initial_backoff
        for attempt in itertools.count(1):
            request_id = self._reserve()
            data = frame(request_id) if frame is not None else _wire.request(
                request_id, self.api_key, body_type, build)
            answers, sent, error = self._attempt(1, data, deadline)
            if error is None:
                answer = answers.get(request_id, answers.get(0))
                if not isinstance(answer, errors.QuiverError):
                    return answer
                # An id-0 answer: the server could not read the frame; the same bytes would get
                # the same answer.
                if request_id not in answers or not isinstance(
                        answer, (errors.Unavailable, errors.ResourceExhausted)):
                    raise answer
                error = answer
            elif isinstance(error, errors.DeadlineExceeded):
                raise error
            if sent and body_type in _NOT_IDEMPOTENT:
                raise error  # the outcome is unknown: not repeated
            sleep = backoff * random.uniform(0.5, 1.5)
            if attempt >= self.max_attempts or time.monotonic() + sleep >= deadline:
                raise error
            time.sleep(sleep)
            backoff = min(backoff * 2, 1.0)

    # ---- collections ----

    def create_collection(self, name, dim, *, metric="l2", index=None, timeout=None, **schema):
        """Creates a collection (schema fields as in docs/api.md: clusters, topics,
        topic_threshold, topic_concat, max_history, shards; index a dict such as
        {"type": "hnsw", "m": 16}) and returns its info."""
        s = dict(schema, name=name, dim=dim, metric=metric, index=index)

        def build(b):
            sch = _wire._schema(b, s)
            CreateCollection.Start(b)
            CreateCollection.AddSchema(b, sch)
            return CreateCollection.End(b)
        return self._call(Body.CreateCollection, build, timeout)

    def drop_collection(self, name, *, timeout=None):
        self._call(Body.DropCollection, _wire.table(DropCollection, Name=name), timeout)

    def list_collections(self, *, timeout=None):
        return self._call(Body.ListCollections, _wire.table(ListCollections), timeout)

    def describe_collection(self, name, *, timeout=None):
        return self._call(Body.DescribeCollection, _wire.table(DescribeCollection, Name=name),
                          timeout)

    # ---- items ----

    def upsert(self, collection, ids, vectors, *, clusters=None, topics=None, categories=None,
               tags=None, timestamps=None, payloads=None, chunk_size=None, progress=None,
               timeout=None):
        """Creates or replaces items: ``ids`` (n) and ``vectors`` (n x dim), with optional
        per-item ``clusters``, ``topics`` (n x K), ``categories`` (None: none), ``tags`` (a list
        per item), ``timestamps`` and ``payloads`` (dicts or JSON text). Sent in requests of
        ``chunk_size`` items (default: about 16 MiB of vectors, at most 10,000 items), each
        retried on its own; ``progress(done, total)`` after each. Returns {"op_seq" (the last
        request's), "changed" (summed)}."""
        ids = np.asarray(ids, dtype=np.uint64).ravel()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors.reshape(len(ids), -1) if len(ids) else vectors.reshape(0, 0)
        if len(vectors) != len(ids):
            raise errors.InvalidArgument(f"{len(ids)} ids but {len(vectors)} vectors")
        per_item = {"clusters": clusters, "topics": topics, "categories": categories,
                    "tags": tags, "timestamps": timestamps, "payloads": payloads}
        for name, column in per_item.items():
            if column is not None and len(column) != len(ids):
                raise errors.InvalidArgument(f"{len(ids)} ids but {len(column)} {name}")
        if chunk_size is None:
            chunk_size = max(1, min(10000, (16 << 20) // max(1, 4 * vectors.shape[1] + 64)))
        total = {"op_seq": 0, "changed": 0}
        for start in range(0, len(ids), chunk_size):
            end = min(len(ids), start + chunk_size)
            part = {k: (v[start:end] if v is not None else None) for k, v in per_item.items()}

            def build(b, start=start, end=end, part=part):
                offsets = _wire.items(b, ids[start:end], vectors[start:end], **part)
                v = _wire._offsets(b, Upsert.StartItemsVector, offsets)
                name = b.CreateString(collection)
                Upsert.Start(b)
                Upsert.AddCollection(b, name)
                Upsert.AddItems(b, v)
                return Upsert.End(b)
            r = self._call(Body.Upsert, build, timeout)
            total["op_seq"] = r["op_seq"]
            total["changed"] += r["changed"]
            if progress is not None:
                progress(end, len(ids))
        return total

    def delete(self, collection, ids, *, timeout=None):
        """Deletes items; returns {"op_seq", "changed"} (changed: how many existed)."""
        return self._call(Body.Delete, _wire.table(
            Delete, Collection=collection, Ids=np.asarray(ids, dtype="<u8").ravel()), timeout)

    def get(self, collection, ids, *, timeout=None):
        """Items by id: a list parallel to ids of dicts (id, vector, cluster, topics, category,
        tags, timestamp, payload) or None."""
        return self._call(Body.Get, _wire.table(
            Get, Collection=collection, Ids=np.asarray(ids, dtype="<u8").ravel()), timeout)

    def count(self, collection, filter=None, *, timeout=None):
        """How many items the collection holds, or pass ``filter`` (docs/queries.md)."""
        def build(b):
            f = _wire._filter(b, filter) if filter is not None else None
            name = b.CreateString(collection)
            Count.Start(b)
            Count.AddCollection(b, name)
            if f is not None:
                Count.AddFilter(b, f)
            return Count.End(b)
        return self._call(Body.Count, build, timeout)

    def scroll(self, collection, cursor=0, limit=100, *, filter=None, vectors=True,
               payload=True, timeout=None):
        """One page of items in id order from the id ``cursor``: (items, next cursor or None).
        A cursor stays valid across writes (docs/api.md, "Count and scroll")."""
        def build(b):
            f = _wire._filter(b, filter) if filter is not None else None
            name = b.CreateString(collection)
            Scroll.Start(b)
            Scroll.AddCollection(b, name)
            Scroll.AddCursor(b, int(cursor))
            Scroll.AddLimit(b, int(limit))
            if f is not None:
                Scroll.AddFilter(b, f)
            Scroll.AddVectors(b, bool(vectors))
            Scroll.AddPayload(b, bool(payload))
            return Scroll.End(b)
        return self._call(Body.Scroll, build, timeout)

    def iter_items(self, collection, *, page=1000, filter=None, vectors=True, payload=True,
                   timeout=None):
        """Every item (passing ``filter``), in id order, page by page."""
        cursor = 0
        while cursor is not None:
            items, cursor = self.scroll(collection, cursor, page, filter=filter,
                                        vectors=vectors, payload=payload, timeout=timeout)
            yield from items

    # ---- users and events ----

    def put_users(self, collection, ids, vectors=None, histories=None, *, timeout=None):
        """Creates or replaces users: ``vectors`` (n x dim, or None) and ``histories`` (per
        user a list of (item, timestamp), newest first, or None)."""
        ids = np.asarray(ids, dtype=np.uint64).ravel()
        if vectors is not None:
            vectors = np.asarray(vectors, dtype=np.float32)

        def build(b):
            offsets = _wire.users(b, ids, vectors, histories)
            v = _wire._offsets(b, PutUsers.StartUsersVector, offsets)
            name = b.CreateString(collection)
            PutUsers.Start(b)
            PutUsers.AddCollection(b, name)
            PutUsers.AddUsers(b, v)
            return PutUsers.End(b)
        return self._call(Body.PutUsers, build, timeout)

    def get_user(self, collection, user, *, timeout=None):
        """{"id", "vector", "history": [(item, timestamp), ...]} or None."""
        return self._call(Body.GetUser, _wire.table(GetUser, Collection=collection, Id=int(user)),
                          timeout)

    def add_events(self, collection, users, items, timestamps, *, timeout=None):
        """Appends (user, item, timestamp) events to users' histories. Not retried once sent
        (a repeat would append them twice)."""
        events = np.zeros(len(users), dtype=_wire.EVENT)
        events["user"], events["item"], events["timestamp"] = users, items, timestamps

        def build(b):
            v = _wire.struct_vector(b, AddEvents.StartEventsVector, events)
            name = b.CreateString(collection)
            AddEvents.Start(b)
            AddEvents.AddCollection(b, name)
            AddEvents.AddEvents(b, v)
            return AddEvents.End(b)
        return self._call(Body.AddEvents, build, timeout)

    # ---- search ----

    def search(self, collection, vector=None, *, k=10, timeout=None, **query):
        """The nearest items to ``vector`` (or ``vectors=`` several, merged by ``aggregate``),
        with any operator of docs/queries.md as a keyword in its JSON shape: quota, filter,
        rerank, mvke, fresh, channels, exclude, weights, params (or ef, nprobe, refine),
        payload, min_seq. Returns a SearchResult (ids and scores as numpy arrays)."""
        q = dict(query, k=k)
        if vector is not None and set(query) <= _PLAIN:
            # The usual search, a vector and scalar knobs: its frame is a copy of a cached
            # template with the id and vector written in.
            row = np.ascontiguousarray(vector, dtype=np.float32)
            if row.ndim == 1:
                key = (collection, row.shape[0], tuple(sorted(q.items())))
                template = self._templates.get(key)
                if template is None:
                    template = _wire.SearchTemplate(self.api_key, collection, q, row.shape[0])
                    if len(self._templates) >= 64:
                        self._templates.clear()
                    self._templates[key] = template
                return self._call(Body.Search, None, timeout,
                                  frame=lambda request_id: template.frames(request_id, row))
        if vector is not None:
            q["vector"] = vector
        return self._call(Body.Search, lambda b: _wire.search(b, collection, q), timeout)

    def search_many(self, collection, vectors, *, k=10, timeout=None, **query):
        """One search per row of ``vectors`` (n x dim; the other options shared), pipelined on
        one connection: every frame in one write, the answers matched by id. Returns a list
        parallel to the rows of SearchResult or, for a search that failed, its QuiverError."""
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        if rows.ndim != 2:
            raise errors.InvalidArgument("vectors must be 2-D: one row per search")
        if len(rows) == 0:
            return []
        deadline = time.monotonic() + (timeout or self.deadline)
        q = dict(query, k=k)
        first = self._reserve(len(rows))
        blob = _wire.SearchTemplate(self.api_key, collection, q, rows.shape[1]).frames(first,
                                                                                     rows)
        return self._pipelined(collection, range(first, first + len(rows)), blob,
                               lambda i: dict(q, vector=rows[i]), deadline)

    def search_batch(self, collection, queries, *, timeout=None, pipelined=True):
        """Many searches, each a dict of search() keywords (``vector`` included): a list of
        SearchResult or QuiverError, parallel to ``queries``. pipelined: one frame per search on
        one connection (the server answers them concurrently); else one SearchBatch request
        (answered in order, on one thread). Transport failures retry the unanswered searches."""
        deadline = time.monotonic() + (timeout or self.deadline)
        if not pipelined:
            def build(b):
                each = [_wire.search(b, collection, q) for q in queries]
                v = _wire._offsets(b, SearchBatch.StartSearchesVector, each)
                SearchBatch.Start(b)
                SearchBatch.AddSearches(b, v)
                return SearchBatch.End(b)
            return self._call(Body.SearchBatch, build, _left(deadline))
        first = self._reserve(len(queries))
        blob = b"".join(
            _wire.request(first + i, self.api_key, Body.Search,
                          lambda b, q=q: _wire.search(b, collection, q))
            for i, q in enumerate(queries))
        return self._pipelined(collection, range(first, first + len(queries)), blob,
                               queries.__getitem__, deadline)

    def _pipelined(self, collection, ids, blob, query_at, deadline):
        """Sends the search frames of request ids `ids` (their bytes end to end in `blob`) on
        one connection; a search left unanswered by a transport failure is retried alone, with
        the keywords query_at(i) of the i-th."""
        answers, _, error = self._attempt(len(ids), blob, deadline)
        out = []
        for i, request_id in enumerate(ids):
            if request_id in answers:
                out.append(answers[request_id])
            elif 0 in answers and error is None:
                out.append(answers[0])  # a frame the server could not read
            else:
                try:
                    out.append(self.search(collection, timeout=_left(deadline), **query_at(i)))
                except errors.QuiverError as e:
                    out.append(e)
        return out

    # ---- neighbor lists and plugins ----

    def run_plugin(self, collection, plugin, config=None, *, incremental=False, timeout=None):
        """Runs an index-time plugin (docs/plugins.md); config a dict (or JSON text). Returns
        {"kinds", "lists", "removed", "incremental"}. Give a long timeout."""
        import json
        text = config if isinstance(config, str) else json.dumps(config or {})
        return self._call(Body.RunPlugin, _wire.table(
            RunPlugin, Collection=collection, Plugin=plugin, Config=text,
            Incremental=bool(incremental)), timeout)

    def get_list(self, collection, kind, key, *, timeout=None):
        """A neighbor list: [(id, score), ...] or None."""
        return self._call(Body.GetList, _wire.table(GetList, Collection=collection, Kind=kind,
                                                    Key=int(key)), timeout)

    def list_lists(self, collection, *, timeout=None):
        return self._call(Body.ListLists, _wire.table(ListLists, Collection=collection), timeout)

    def list_plugins(self, *, timeout=None):
        return self._call(Body.ListPlugins, _wire.table(ListPlugins), timeout)

    # ---- versions, snapshots, health, cluster ----

    def snapshot(self, collection="", *, timeout=None):
        """Snapshots one collection's indexes, or every collection's."""
        self._call(Body.Snapshot, _wire.table(Snapshot, Collection=collection), timeout)

    def list_versions(self, collection="", *, timeout=None):
        """The data root's versions ({"current", "previous", "versions"}); with a collection,
        its cluster versions."""
        return self._call(Body.ListVersions, _wire.table(ListVersions, Collection=collection),
                          timeout)

    def reload(self, version, *, timeout=None):
        """Switches the server to another version of its data root."""
        self._call(Body.Reload, _wire.table(Reload, Version=version), timeout)

    def rollback(self, collection="", *, timeout=None):
        """Switches back to the previous version (with a collection: its cluster version)."""
        self._call(Body.Rollback, _wire.table(Rollback, Collection=collection), timeout)

    def publish_version(self, collection, version, path, after_seq=None, *, timeout=None):
        """Cluster mode: publishes a `quiver build --shards` build as a collection version."""
        fields = {"Version": version, "Collection": collection, "Path": path}
        if after_seq is not None:
            fields.update(AfterSeq=int(after_seq), HasAfterSeq=True)
        self._call(Body.Reload, _wire.table(Reload, **fields), timeout)

    def health(self, *, timeout=None):
        return self._call(Body.Health, _wire.table(Health), timeout)

    def cluster(self, *, timeout=None):
        """Cluster mode with etcd: {"members", "assignment"}."""
        return self._call(Body.ClusterInfoRequest, _wire.table(ClusterInfoRequest), timeout)

    def assign_shard(self, shard, nodes, *, timeout=None):
        self._call(Body.AssignShard, _wire.table(AssignShard, Shard=int(shard),
                                                 Nodes=list(nodes)), timeout)
