"""The binary protocol's frames: requests built and responses read with the code flatc
generates from net/schema/quiver.fbs (package quiver.wire, made at build time), numpy for the
bulk arrays. The request fields take the REST bodies' shapes (docs/api.md, docs/queries.md);
the server validates every one of them."""

import json
import struct

import flatbuffers
import numpy as np
from flatbuffers.table import Table

from . import errors
from .wire import (Channels, FloatVector, Fresh, IndexSpec, Item, Mvke, Quota, Request, Rerank,
                   Response, Schema, Search, User)
from .wire import Filter as FilterTbl
from .wire.RequestBody import RequestBody
from .wire.ResponseBody import ResponseBody
from .wire import (CollectionInfo as CollectionInfoTbl, CollectionList, CountResult as CountTbl,
                   HealthResult, Items, ListInfos, ListResult, PluginRunResult, Plugins,
                   ScrollResult as ScrollTbl, SearchBatchResult, SearchResult as SearchResultTbl,
                   UserResult, Versions, WriteResult, ClusterInfo as ClusterInfoTbl)

HEADER = struct.Struct("<I")
HIT = np.dtype({"names": ["id", "score"], "formats": ["<u8", "<f4"], "offsets": [0, 8],
                "itemsize": 16})
INTERACTION = np.dtype([("item", "<u8"), ("timestamp", "<i8")])
EVENT = np.dtype([("user", "<u8"), ("item", "<u8"), ("timestamp", "<i8")])

METRICS = {"l2": 0, "ip": 1, "cosine": 2}
METRIC_NAMES = {v: k for k, v in METRICS.items()}
INDEX_TYPES = {"flat": 1, "hnsw": 2, "ivf_pq": 3}
INDEX_NAMES = {v: k for k, v in INDEX_TYPES.items()}
AGGREGATES = {"max": 0, "sum": 1, "weighted": 2}
MVKE_STRATEGIES = {"per_topic": 0, "concat": 1, "rescore": 2, "weighted_scan": 3}
FILTER_FIELDS = {"category": 0, "tag": 1, "tags": 1, "timestamp": 2, "cluster": 3, "id": 4}
CHANNEL_NAMES = ("u2i", "u2i2i", "u2u2i")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _bad(message):
    return errors.InvalidArgument(message)


def duration(value, what):
    """An integer, or a string of digits with a unit s, m, h or d ("30m", "6h"), in seconds."""
    if isinstance(value, bool):
        raise _bad(f"{what} must be a duration")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str) and len(value) > 1 and value[:-1].isdigit() \
            and value[-1] in DURATION_UNITS:
        return int(value[:-1]) * DURATION_UNITS[value[-1]]
    raise _bad(f"{what} must be an integer or digits with a unit s, m, h or d; got {value!r}")


def _only(obj, what, known):
    if not isinstance(obj, dict):
        raise _bad(f"{what} must be a dict")
    unknown = sorted(set(obj) - set(known))
    if unknown:
        raise _bad(f"unknown {what} field '{unknown[0]}' (known: {', '.join(known)})")


# ---- building requests ----

def _floats(b, values):
    return b.CreateNumpyVector(np.ascontiguousarray(values, dtype="<f4").ravel())


def _u64s(b, values):
    return b.CreateNumpyVector(np.ascontiguousarray(values, dtype="<u8").ravel())


def _i64s(b, values):
    return b.CreateNumpyVector(np.ascontiguousarray(values, dtype="<i8").ravel())


def _u32s(b, values):
    return b.CreateNumpyVector(np.ascontiguousarray(values, dtype="<u4").ravel())


def _offsets(b, start_vector, offsets):
    start_vector(b, len(offsets))
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _strings(b, start_vector, names):
    return _offsets(b, start_vector, [b.CreateString(n) for n in names])


def _float_vectors(b, start_vector, rows):
    each = []
    for row in rows:
        v = _floats(b, row)
        FloatVector.Start(b)
        FloatVector.AddValues(b, v)
        each.append(FloatVector.End(b))
    return _offsets(b, start_vector, each)


def _schema(b, s):
    _only(s, "schema", ("name", "dim", "metric", "index", "clusters", "topics",
                        "topic_threshold", "topic_concat", "max_history", "shards"))
    name = b.CreateString(s.get("name", ""))
    index = None
    if s.get("index") is not None:
        x = s["index"]
        _only(x, "index", ("type", "m", "ef_construction", "ef_search", "sq8", "nlist", "pq_m",
                           "nbits", "nprobe", "refine", "refine_int8"))
        if x.get("type", "hnsw") not in INDEX_TYPES:
            raise _bad(f"unknown index type '{x.get('type')}' (flat, hnsw, ivf_pq)")
        IndexSpec.Start(b)
        IndexSpec.AddType(b, INDEX_TYPES[x.get("type", "hnsw")])
        for key, add in (("m", IndexSpec.AddHnswM), ("ef_construction",
                                                      IndexSpec.AddHnswEfConstruction),
                         ("ef_search", IndexSpec.AddHnswEfSearch), ("nlist", IndexSpec.AddIvfNlist),
                         ("pq_m", IndexSpec.AddIvfM), ("nbits", IndexSpec.AddIvfNbits),
                         ("nprobe", IndexSpec.AddIvfNprobe), ("refine", IndexSpec.AddIvfRefine)):
            if key in x:
                add(b, int(x[key]))
        if "sq8" in x:
            IndexSpec.AddHnswSq8(b, bool(x["sq8"]))
        if "refine_int8" in x:
            IndexSpec.AddIvfRefineInt8(b, bool(x["refine_int8"]))
        index = IndexSpec.End(b)
    metric = s.get("metric", "l2")
    if metric not in METRICS:
        raise _bad(f"unknown metric '{metric}' (l2, ip, cosine)")
    Schema.Start(b)
    Schema.AddName(b, name)
    Schema.AddDim(b, int(s.get("dim", 0)))
    Schema.AddMetric(b, METRICS[metric])
    if index is not None:
        Schema.AddIndex(b, index)
    Schema.AddClusters(b, int(s.get("clusters", 0)))
    Schema.AddTopics(b, int(s.get("topics", 0)))
    Schema.AddMaxHistory(b, int(s.get("max_history", 200)))
    Schema.AddTopicThreshold(b, float(s.get("topic_threshold", 0.0)))
    Schema.AddTopicConcat(b, bool(s.get("topic_concat", False)))
    Schema.AddShards(b, int(s.get("shards", 1)))
    return Schema.End(b)


def _filter(b, f):
    """A filter in docs/queries.md's JSON shape: {"eq": {"category": 3}}, {"and": [...]}, ..."""
    if not isinstance(f, dict) or len(f) != 1:
        raise _bad("a filter is a dict with one operator: eq, in, range, not, and, or")
    (op, arg), = f.items()
    children, values, lo, hi, field = [], None, INT64_MIN, INT64_MAX, 0
    if op in ("and", "or", "not"):
        parts = [arg] if op == "not" else arg
        if not isinstance(parts, (list, tuple)) or (op != "not" and not parts):
            raise _bad(f"filter {op} takes a list of filters")
        children = [_filter(b, c) for c in parts]
        code = {"not": 3, "and": 4, "or": 5}[op]
    elif op in ("eq", "in", "range"):
        if not isinstance(arg, dict) or len(arg) != 1:
            raise _bad(f"filter {op} takes {{field: value}}")
        (name, value), = arg.items()
        if name not in FILTER_FIELDS:
            raise _bad(f"unknown filter field '{name}' (category, tag, timestamp, cluster, id)")
        field = FILTER_FIELDS[name]
        if op == "range":
            _only(value, "filter range", ("gte", "gt", "lte", "lt"))
            if "gte" in value:
                lo = int(value["gte"])
            if "gt" in value:
                lo = int(value["gt"]) + 1
            if "lte" in value:
                hi = int(value["lte"])
            if "lt" in value:
                hi = int(value["lt"]) - 1
            code = 2
        else:
            vals = [value] if op == "eq" else list(value)
            if name == "id":  # ids travel as the bit patterns of int64
                values = np.asarray(vals, dtype="<u8").view("<i8")
            else:
                values = np.asarray(vals, dtype="<i8")
            code = 0 if op == "eq" else 1
    else:
        raise _bad(f"unknown filter operator '{op}' (eq, in, range, not, and, or)")
    cv = _offsets(b, FilterTbl.StartChildrenVector, children) if children else None
    vv = _i64s(b, values) if values is not None else None
    FilterTbl.Start(b)
    FilterTbl.AddOp(b, code)
    FilterTbl.AddField(b, field)
    if vv is not None:
        FilterTbl.AddValues(b, vv)
    FilterTbl.AddLo(b, lo)
    FilterTbl.AddHi(b, hi)
    if cv is not None:
        FilterTbl.AddChildren(b, cv)
    return FilterTbl.End(b)


def _quota(b, q):
    _only(q, "quota", ("p", "a", "total", "temperature", "user", "half_life"))
    p = q.get("p", "auto")
    learned = history = False
    if isinstance(p, str):
        if p not in ("auto", "history", "learned"):
            raise _bad('quota p must be a list, "auto", "history" or "learned"')
        learned, history = p == "learned", p in ("history", "learned")
        pv = _floats(b, [])
    else:
        pv = _floats(b, p)
    if "user" in q and not history:
        raise _bad('quota user is for p "history" or "learned"')
    if history and "user" not in q:
        raise _bad(f'quota p "{p}" needs a user')
    Quota.Start(b)
    Quota.AddP(b, pv)
    Quota.AddA(b, float(q.get("a", 1.0)))
    Quota.AddTotal(b, int(q.get("total", 0)))
    Quota.AddTemperature(b, float(q.get("temperature", 1.0)))
    if history:
        Quota.AddUser(b, int(q["user"]))
        Quota.AddHasUser(b, True)
    if "half_life" in q:
        Quota.AddHalfLife(b, duration(q["half_life"], "quota half_life"))
    Quota.AddLearned(b, learned)
    return Quota.End(b)


def _mvke(b, m):
    _only(m, "mvke", ("user_vectors", "strategy", "candidates", "max_candidates"))
    strategy = m.get("strategy", "per_topic")
    if strategy not in MVKE_STRATEGIES:
        raise _bad(f"unknown mvke strategy '{strategy}' ({', '.join(MVKE_STRATEGIES)})")
    uv = _float_vectors(b, Mvke.StartUserVectorsVector, np.atleast_2d(
        np.asarray(m["user_vectors"], dtype=np.float32)))
    Mvke.Start(b)
    Mvke.AddUserVectors(b, uv)
    Mvke.AddStrategy(b, MVKE_STRATEGIES[strategy])
    Mvke.AddCandidates(b, int(m.get("candidates", 0)))
    Mvke.AddMaxCandidates(b, int(m.get("max_candidates", 0)))
    return Mvke.End(b)


def _fresh(b, f):
    _only(f, "fresh", ("pool", "now", "boost", "half_life", "horizon", "window"))
    Fresh.Start(b)
    Fresh.AddPool(b, duration(f.get("pool", 0), "fresh pool"))
    Fresh.AddNow(b, int(f.get("now", 0)))
    Fresh.AddBoost(b, float(f.get("boost", 0.0)))
    Fresh.AddHalfLife(b, duration(f.get("half_life", 0), "fresh half_life"))
    Fresh.AddHorizon(b, duration(f.get("horizon", 0), "fresh horizon"))
    Fresh.AddWindow(b, int(f.get("window", 0)))
    return Fresh.End(b)


def _channels(b, c):
    _only(c, "channels", ("user", "seed_items", "u2i", "u2i2i", "u2u2i", "seeds", "per_seed",
                          "users", "per_user", "i2i_kind", "u2u_kind", "weights",
                          "exclude_seen"))
    w = c.get("weights", {})
    _only(w, "channels weights", ("sim", "dup", "div", "u2i", "u2i2i", "u2u2i"))
    seeds = _u64s(b, c.get("seed_items", []))
    i2i = b.CreateString(c.get("i2i_kind", "i2i"))
    u2u = b.CreateString(c.get("u2u_kind", "u2u"))
    Channels.Start(b)
    if "user" in c:
        Channels.AddHasUser(b, True)
        Channels.AddUser(b, int(c["user"]))
    Channels.AddSeedItems(b, seeds)
    Channels.AddU2i(b, bool(c.get("u2i", True)))
    Channels.AddU2i2i(b, bool(c.get("u2i2i", True)))
    Channels.AddU2u2i(b, bool(c.get("u2u2i", True)))
    Channels.AddSeeds(b, int(c.get("seeds", 20)))
    Channels.AddPerSeed(b, int(c.get("per_seed", 20)))
    Channels.AddUsers(b, int(c.get("users", 20)))
    Channels.AddPerUser(b, int(c.get("per_user", 10)))
    Channels.AddI2iKind(b, i2i)
    Channels.AddU2uKind(b, u2u)
    Channels.AddWSim(b, float(w.get("sim", 1.0)))
    Channels.AddWDup(b, float(w.get("dup", 0.5)))
    Channels.AddWDiv(b, float(w.get("div", 0.2)))
    Channels.AddExcludeSeen(b, bool(c.get("exclude_seen", True)))
    Channels.AddWU2i(b, float(w.get("u2i", 1.0)))
    Channels.AddWU2i2i(b, float(w.get("u2i2i", 1.0)))
    Channels.AddWU2u2i(b, float(w.get("u2u2i", 1.0)))
    return Channels.End(b)


def _rerank(b, r):
    _only(r, "rerank", ("mmr", "max_consecutive_category", "per_category_cap",
                        "category_diversity"))
    mmr = r.get("mmr")
    if mmr is not None:
        _only(mmr, "rerank mmr", ("lambda", "window"))
    Rerank.Start(b)
    Rerank.AddMmrLambda(b, float(mmr["lambda"]) if mmr is not None else -1.0)
    Rerank.AddWindow(b, int(mmr.get("window", 0)) if mmr is not None else 0)
    Rerank.AddMaxConsecutiveCategory(b, int(r.get("max_consecutive_category", 0)))
    Rerank.AddPerCategoryCap(b, int(r.get("per_category_cap", 0)))
    Rerank.AddCategoryDiversity(b, float(r.get("category_diversity", 0.0)))
    return Rerank.End(b)


SEARCH_FIELDS = ("vector", "vectors", "aggregate", "weights", "quota", "filter", "rerank", "mvke",
                 "fresh", "payload", "channels", "k", "params", "exclude", "min_seq", "shards",
                 "ef", "nprobe", "refine")


def search(b, collection, q):
    """A Search table from a search body (docs/queries.md) given as a dict."""
    _only(q, "search", SEARCH_FIELDS)
    vector = vectors = None
    if q.get("vector") is not None and q.get("vectors") is not None:
        raise _bad("give either vector or vectors, not both")
    if q.get("vector") is not None:
        vector = _floats(b, q["vector"])
    elif q.get("vectors") is not None:
        rows = np.asarray(q["vectors"], dtype=np.float32)
        if rows.ndim != 2:
            raise _bad("vectors must be 2-D (one row per query vector)")
        if len(rows) == 1:
            vector = _floats(b, rows[0])
        else:
            vectors = _float_vectors(b, Search.StartVectorsVector, rows)
    aggregate = q.get("aggregate", "max")
    if aggregate not in AGGREGATES:
        raise _bad(f"unknown aggregate '{aggregate}' (max, sum, weighted)")
    weights = _floats(b, q["weights"]) if q.get("weights") is not None else None
    quota = _quota(b, q["quota"]) if q.get("quota") is not None else None
    filt = _filter(b, q["filter"]) if q.get("filter") is not None else None
    rerank = _rerank(b, q["rerank"]) if q.get("rerank") is not None else None
    mvke = _mvke(b, q["mvke"]) if q.get("mvke") is not None else None
    fresh = _fresh(b, q["fresh"]) if q.get("fresh") is not None else None
    channels = _channels(b, q["channels"]) if q.get("channels") is not None else None
    exclude = _u64s(b, q["exclude"]) if q.get("exclude") is not None else None
    shards = _u32s(b, q["shards"]) if q.get("shards") is not None else None
    params = dict(q.get("params") or {})
    _only(params, "params", ("ef", "nprobe", "refine"))
    for key in ("ef", "nprobe", "refine"):
        if q.get(key):
            params[key] = q[key]
    name = b.CreateString(collection)
    Search.Start(b)
    Search.AddCollection(b, name)
    if vector is not None:
        Search.AddVector(b, vector)
    if vectors is not None:
        Search.AddVectors(b, vectors)
    Search.AddK(b, int(q.get("k", 10)))
    Search.AddEf(b, int(params.get("ef", 0)))
    Search.AddNprobe(b, int(params.get("nprobe", 0)))
    Search.AddRefine(b, int(params.get("refine", 0)))
    Search.AddAggregate(b, AGGREGATES[aggregate])
    for value, add in ((weights, Search.AddWeights), (quota, Search.AddQuota),
                       (filt, Search.AddFilter), (rerank, Search.AddRerank),
                       (mvke, Search.AddMvke), (fresh, Search.AddFresh),
                       (channels, Search.AddChannels), (exclude, Search.AddExclude),
                       (shards, Search.AddShards)):
        if value is not None:
            add(b, value)
    Search.AddPayload(b, bool(q.get("payload", False)))
    Search.AddMinSeq(b, int(q.get("min_seq", 0)))
    return Search.End(b)


def _payload_text(p):
    if p is None:
        return ""
    return p if isinstance(p, str) else json.dumps(p, separators=(",", ":"))


def items(b, ids, vectors, clusters=None, topics=None, categories=None, tags=None,
          timestamps=None, payloads=None):
    """An [Item] vector from parallel arrays (row i describes item ids[i])."""
    offsets = []
    for i in range(len(ids)):
        vec = _floats(b, vectors[i])
        tw = _floats(b, topics[i]) if topics is not None else None
        tg = _i64s(b, tags[i]) if tags is not None and tags[i] is not None else None
        pl = b.CreateString(_payload_text(payloads[i])) if payloads is not None \
            and payloads[i] is not None else None
        Item.Start(b)
        Item.AddId(b, int(ids[i]))
        Item.AddVector(b, vec)
        if clusters is not None:
            Item.AddCluster(b, int(clusters[i]))
        if tw is not None:
            Item.AddTopicWeights(b, tw)
        if categories is not None and categories[i] is not None:
            Item.AddHasCategory(b, True)
            Item.AddCategory(b, int(categories[i]))
        if tg is not None:
            Item.AddTags(b, tg)
        if timestamps is not None:
            Item.AddTimestamp(b, int(timestamps[i]))
        if pl is not None:
            Item.AddPayload(b, pl)
        offsets.append(Item.End(b))
    return offsets


def users(b, ids, vectors=None, histories=None):
    offsets = []
    for i in range(len(ids)):
        vec = _floats(b, vectors[i]) if vectors is not None and vectors[i] is not None else None
        hist = None
        if histories is not None and histories[i] is not None:
            h = np.asarray([(int(e[0]), int(e[1])) for e in histories[i]], dtype=INTERACTION)
            hist = struct_vector(b, User.StartHistoryVector, h)
        User.Start(b)
        User.AddId(b, int(ids[i]))
        if vec is not None:
            User.AddVector(b, vec)
        if hist is not None:
            User.AddHistory(b, hist)
        offsets.append(User.End(b))
    return offsets


def struct_vector(b, start_vector, array):
    """A vector of structs from a numpy structured array of the struct's exact layout."""
    start_vector(b, len(array))
    b.head = b.head - array.nbytes
    b.Bytes[b.head:b.head + array.nbytes] = array.tobytes()
    return b.EndVector()


def request(request_id, api_key, body_type, body_fn):
    """One request frame: the length, then the Request whose body body_fn(builder) builds."""
    b = flatbuffers.Builder(256)
    body = body_fn(b)
    key = b.CreateString(api_key) if api_key else None
    Request.Start(b)
    Request.AddId(b, request_id)
    if key is not None:
        Request.AddApiKey(b, key)
    Request.AddBodyType(b, body_type)
    Request.AddBody(b, body)
    b.Finish(Request.End(b))
    out = b.Output()
    return HEADER.pack(len(out)) + out


class SearchTemplate:
    """Search request frames that differ only in their request id and vector: one frame is
    built as any request, then copied with the id and the vector bytes written in place (their
    positions found through the generated accessors). n searches cost one build and two numpy
    copies instead of n builds."""

    def __init__(self, api_key, collection, query, dim):
        self.dim = dim
        first = request(1, api_key, RequestBody.Search,
                        lambda b: search(b, collection, dict(query, vector=np.zeros(dim))))
        body = memoryview(first)[HEADER.size:]
        req = Request.Request.GetRootAs(body, 0)
        table = req.Body()
        o = Table(body, table.Pos).Offset(6)  # Search.vector
        if not o or table.VectorLen(o) != dim or not req._tab.Offset(4):
            raise _bad("cannot lay out the search frames")
        self.id_at = HEADER.size + req._tab.Pos + req._tab.Offset(4)
        self.vec_at = HEADER.size + table.Vector(o)
        self.frame = np.frombuffer(first, dtype=np.uint8)

    def frames(self, first_id, rows):
        """The frames of the rows (n x dim), request ids first_id, first_id + 1, ..., end to
        end."""
        rows = np.ascontiguousarray(rows, dtype="<f4").reshape(-1, self.dim)
        n = len(rows)
        out = np.tile(self.frame, (n, 1))
        out[:, self.id_at:self.id_at + 8] = np.arange(
            first_id, first_id + n, dtype="<u8").view(np.uint8).reshape(n, 8)
        out[:, self.vec_at:self.vec_at + 4 * self.dim] = rows.view(np.uint8).reshape(
            n, 4 * self.dim)
        return out.tobytes()


def table(module, **fields):
    """A request body of strings, scalars, numpy vectors and lists of strings: `fields` name
    the generated module's Add* functions (Collection=..., Ids=...). The strings and vectors are
    created first, as FlatBuffers requires, then the table."""
    def build(b):
        made = {}
        for key, value in fields.items():
            if isinstance(value, str):
                made[key] = b.CreateString(value)
            elif isinstance(value, np.ndarray):
                made[key] = b.CreateNumpyVector(value)
            elif isinstance(value, list):  # of strings
                made[key] = _strings(b, getattr(module, f"Start{key}Vector"), value)
            else:
                made[key] = value
        module.Start(b)
        for key, value in made.items():
            getattr(module, f"Add{key}")(b, value)
        return module.End(b)
    return build


# ---- reading responses ----

def _vector_bytes(tab, slot):
    """(start, length) of the vector in field `slot`, or (0, 0) if absent."""
    o = tab.Offset(4 + 2 * slot)
    if not o:
        return 0, 0
    return tab.Vector(o), tab.VectorLen(o)


def hits(tab, slot):
    start, n = _vector_bytes(tab, slot)
    if n == 0:
        return np.zeros(0, dtype=HIT)
    return np.frombuffer(tab.Bytes, dtype=HIT, count=n, offset=start)


def _text(x):
    return x.decode() if isinstance(x, bytes) else (x or "")


def _payload(text):
    text = _text(text)
    return json.loads(text) if text else None


def item_dict(it):
    out = {"id": it.Id(),
           "vector": it.VectorAsNumpy() if not it.VectorIsNone() else np.zeros(0, np.float32),
           "cluster": it.Cluster(),
           "topics": it.TopicWeightsAsNumpy() if not it.TopicWeightsIsNone() else
           np.zeros(0, np.float32),
           "category": it.Category() if it.HasCategory() else None,
           "tags": it.TagsAsNumpy().tolist() if not it.TagsIsNone() else [],
           "timestamp": it.Timestamp(),
           "payload": _payload(it.Payload())}
    if isinstance(out["vector"], int):  # flatbuffers' AsNumpy of an empty vector
        out["vector"] = np.zeros(0, np.float32)
    if isinstance(out["topics"], int):
        out["topics"] = np.zeros(0, np.float32)
    return out


def _numpy(value, dtype):
    return np.zeros(0, dtype) if isinstance(value, int) else value


_U16, _U32, _I32, _U64 = (struct.Struct(f) for f in ("<H", "<I", "<i", "<Q"))


class _Fields:
    """A table's field offsets read from its vtable in one unpack (the generated accessors look
    each field up on its own, several calls per field): the hot path of search answers."""

    __slots__ = ("buf", "pos", "off")

    def __init__(self, buf, pos):
        self.buf, self.pos = buf, pos
        vt = pos - _I32.unpack_from(buf, pos)[0]
        count = (_U16.unpack_from(buf, vt)[0] - 4) // 2
        self.off = struct.unpack_from(f"<{count}H", buf, vt + 4)

    def field(self, slot):
        return self.off[slot] if slot < len(self.off) else 0

    def vector(self, slot):
        """(start of the elements, count) of a vector field, or None if absent."""
        o = self.field(slot)
        if not o:
            return None
        at = self.pos + o
        at += _U32.unpack_from(self.buf, at)[0]
        return at + 4, _U32.unpack_from(self.buf, at)[0]

    def array(self, slot, dtype):
        v = self.vector(slot)
        if v is None:
            return None
        return np.frombuffer(self.buf, dtype=dtype, count=v[1], offset=v[0]).copy()

    def u64(self, slot):
        o = self.field(slot)
        return _U64.unpack_from(self.buf, self.pos + o)[0] if o else 0

    def u8(self, slot):
        o = self.field(slot)
        return self.buf[self.pos + o] if o else 0

    def table(self, slot):
        o = self.field(slot)
        if not o:
            return None
        at = self.pos + o
        return at + _U32.unpack_from(self.buf, at)[0]


class SearchResult:
    """A search's answer: ``ids`` (uint64) and ``scores`` (float32), best first; with several
    query vectors or MVKE ``vector`` (which one scored each hit highest); in a collection with
    clusters ``cluster`` per hit and ``per_cluster``; with a quota ``quotas``; with payload
    ``payloads`` (parsed JSON, None where absent); with channels ``channels`` (the names of the
    channels that returned each hit); in cluster mode ``seq``."""

    __slots__ = ("ids", "scores", "vector", "cluster", "quotas", "per_cluster", "payloads",
                 "channels", "seq")

    def __init__(self, buf, pos):
        """From the SearchResult table at `pos` of `buf`, its fields by slot
        (net/schema/quiver.fbs) read with numpy."""
        f = _Fields(buf, pos)
        h = f.vector(0)
        if h is None:
            self.ids, self.scores = np.zeros(0, np.uint64), np.zeros(0, np.float32)
        else:
            hv = np.frombuffer(buf, dtype=HIT, count=h[1], offset=h[0])
            self.ids, self.scores = hv["id"].copy(), hv["score"].copy()
        self.vector = f.array(1, "<u4")
        self.cluster = f.array(2, "<i4")
        quotas, per_cluster = f.array(3, "<u4"), f.array(4, "<u4")
        self.quotas = quotas.tolist() if quotas is not None else []
        self.per_cluster = per_cluster.tolist() if per_cluster is not None else []
        self.payloads = None
        p = f.vector(5)
        if p is not None:
            tab = Table(buf, pos)
            self.payloads = [_payload(tab.String(p[0] + 4 * i)) for i in range(p[1])]
        bits = f.array(6, np.uint8)
        self.channels = None if bits is None else [
            [name for bit, name in enumerate(CHANNEL_NAMES) if b >> bit & 1] for b in bits.tolist()]
        self.seq = f.u64(7)

    def __len__(self):
        return len(self.ids)

    def __iter__(self):
        return iter(zip(self.ids.tolist(), self.scores.tolist()))

    def __repr__(self):
        return f"SearchResult({len(self)} hits: {list(self)[:5]}{'...' if len(self) > 5 else ''})"


def schema_dict(s):
    x = s.Index()
    index = None
    if x is not None:
        kind = INDEX_NAMES.get(x.Type(), "hnsw")
        index = {"type": kind}
        if kind == "hnsw":
            index.update(m=x.HnswM(), ef_construction=x.HnswEfConstruction(),
                         ef_search=x.HnswEfSearch(), sq8=x.HnswSq8())
        elif kind == "ivf_pq":
            index.update(nlist=x.IvfNlist(), pq_m=x.IvfM(), nbits=x.IvfNbits(),
                         nprobe=x.IvfNprobe(), refine=x.IvfRefine(),
                         refine_int8=x.IvfRefineInt8())
    return {"name": _text(s.Name()), "dim": s.Dim(), "metric": METRIC_NAMES.get(s.Metric(), "l2"),
            "index": index, "clusters": s.Clusters(), "topics": s.Topics(),
            "topic_threshold": s.TopicThreshold(), "topic_concat": s.TopicConcat(),
            "max_history": s.MaxHistory(), "shards": s.Shards()}


def info_dict(c):
    return {"schema": schema_dict(c.Schema()), "items": c.Items(), "op_seq": c.OpSeq(),
            "snapshot_seq": c.SnapshotSeq(), "index_memory_bytes": c.IndexMemoryBytes(),
            "trained": c.Trained()}


def _hits_list(tab, slot):
    h = hits(tab, slot)
    return list(zip(h["id"].tolist(), h["score"].tolist()))


def response(buf):
    """(request id, the answer or the QuiverError to raise)."""
    # A search answer, the common case, is read straight from the Response table's slots: id 0,
    # error 1, body_type 2, body 3.
    root = _Fields(buf, _U32.unpack_from(buf, 0)[0])
    if not root.field(1) and root.u8(2) == ResponseBody.SearchResult:
        return root.u64(0), SearchResult(buf, root.table(3))
    r = Response.Response.GetRootAs(buf, 0)
    err = r.Error()
    if err is not None:
        return r.Id(), errors.from_code(err.Code(), _text(err.Message()))
    kind, body = r.BodyType(), r.Body()

    def as_(module, name):
        t = getattr(module, name)()
        t.Init(body.Bytes, body.Pos)
        return t

    if kind == ResponseBody.SearchResult:
        t = as_(SearchResultTbl, "SearchResult")
        return r.Id(), SearchResult(t._tab.Bytes, t._tab.Pos)
    if kind == ResponseBody.Ok:
        return r.Id(), None
    if kind == ResponseBody.WriteResult:
        w = as_(WriteResult, "WriteResult")
        return r.Id(), {"op_seq": w.OpSeq(), "changed": w.Changed()}
    if kind == ResponseBody.CollectionInfo:
        return r.Id(), info_dict(as_(CollectionInfoTbl, "CollectionInfo"))
    if kind == ResponseBody.CollectionList:
        t = as_(CollectionList, "CollectionList")
        return r.Id(), [info_dict(t.Collections(i)) for i in range(t.CollectionsLength())]
    if kind == ResponseBody.Items:
        t = as_(Items, "Items")
        found = _numpy(t.FoundAsNumpy(), np.bool_)
        return r.Id(), [item_dict(t.Items(i)) if found[i] else None
                        for i in range(t.ItemsLength())]
    if kind == ResponseBody.UserResult:
        u = as_(UserResult, "UserResult").User()
        if u is None:
            return r.Id(), None
        start, n = _vector_bytes(u._tab, 2)
        history = np.frombuffer(u._tab.Bytes, dtype=INTERACTION, count=n, offset=start) \
            if n else np.zeros(0, INTERACTION)
        return r.Id(), {"id": u.Id(),
                        "vector": _numpy(u.VectorAsNumpy(), np.float32) if not u.VectorIsNone()
                        else np.zeros(0, np.float32),
                        "history": [(int(x["item"]), int(x["timestamp"])) for x in history]}
    if kind == ResponseBody.Versions:
        v = as_(Versions, "Versions")
        out = {"current": _text(v.Current()), "previous": _text(v.Previous()),
               "versions": [_text(v.Versions(i)) for i in range(v.VersionsLength())]}
        if v.Pending() or v.ReplicasLength():
            out["pending"] = _text(v.Pending())
            out["replicas"] = [{"version": _text(x.Version()), "shard": x.Shard(),
                                "nodes": [_text(x.Nodes(j)) for j in range(x.NodesLength())]}
                               for x in (v.Replicas(i) for i in range(v.ReplicasLength()))]
        return r.Id(), out
    if kind == ResponseBody.HealthResult:
        h = as_(HealthResult, "HealthResult")
        return r.Id(), {"status": _text(h.Status()), "version": _text(h.Version())}
    if kind == ResponseBody.PluginRunResult:
        p = as_(PluginRunResult, "PluginRunResult")
        return r.Id(), {"kinds": [_text(p.Kinds(i)) for i in range(p.KindsLength())],
                        "lists": p.Lists(), "removed": p.Removed(),
                        "incremental": p.Incremental()}
    if kind == ResponseBody.ListResult:
        t = as_(ListResult, "ListResult")
        return r.Id(), _hits_list(t._tab, 1) if t.Found() else None
    if kind == ResponseBody.ListInfos:
        t = as_(ListInfos, "ListInfos")
        return r.Id(), [{"kind": _text(x.Kind()), "plugin": _text(x.Plugin()),
                         "config": _text(x.Config()), "keys": x.Keys(), "op_seq": x.OpSeq()}
                        for x in (t.Lists(i) for i in range(t.ListsLength()))]
    if kind == ResponseBody.Plugins:
        t = as_(Plugins, "Plugins")
        return r.Id(), [_text(t.Names(i)) for i in range(t.NamesLength())]
    if kind == ResponseBody.ClusterInfo:
        t = as_(ClusterInfoTbl, "ClusterInfo")
        members = []
        for i in range(t.MembersLength()):
            m = t.Members(i)
            members.append({"id": _text(m.Id()), "host": _text(m.Host()), "port": m.Port(),
                            "shards": _numpy(m.ShardsAsNumpy(), np.uint32).tolist(),
                            "assigned": _numpy(m.AssignedAsNumpy(), np.uint32).tolist()})
        assignment = {}
        for i in range(t.AssignmentLength()):
            s = t.Assignment(i)
            assignment[s.Shard()] = [_text(s.Nodes(j)) for j in range(s.NodesLength())]
        return r.Id(), {"members": members, "assignment": assignment}
    if kind == ResponseBody.SearchBatchResult:
        t = as_(SearchBatchResult, "SearchBatchResult")
        out = []
        for i in range(t.ResultsLength()):
            o = t.Results(i)
            e = o.Error()
            out.append(errors.from_code(e.Code(), _text(e.Message())) if e is not None
                       else SearchResult(o.Result()._tab.Bytes, o.Result()._tab.Pos))
        return r.Id(), out
    if kind == ResponseBody.CountResult:
        return r.Id(), as_(CountTbl, "CountResult").Count()
    if kind == ResponseBody.ScrollResult:
        t = as_(ScrollTbl, "ScrollResult")
        return r.Id(), ([item_dict(t.Items(i)) for i in range(t.ItemsLength())],
                        t.Next() if t.HasNext() else None)
    return r.Id(), errors.Unknown(f"a response body of kind {kind} this client does not read")
