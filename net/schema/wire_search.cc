#include "net/schema/wire_search.h"

namespace quiver::net::wirecodec {

Offset<FloatVectors> PutFloatVectors(FlatBufferBuilder& b,
                                     const std::vector<std::vector<float>>& vs) {
  if (vs.empty()) return 0;
  std::vector<Offset<wire::FloatVector>> each;
  each.reserve(vs.size());
  for (const auto& x : vs) each.push_back(wire::CreateFloatVector(b, b.CreateVector(x)));
  return b.CreateVector(each);
}

std::vector<std::vector<float>> GetFloatVectors(const FloatVectors* vs) {
  std::vector<std::vector<float>> out;
  if (vs) {
    out.reserve(vs->size());
    for (const wire::FloatVector* x : *vs)
      out.push_back(x ? Vec(x->values()) : std::vector<float>());
  }
  return out;
}

namespace {

Offset<wire::Quota> PutQuota(FlatBufferBuilder& b, const QuotaSpec& q) {
  auto p = b.CreateVector(q.p);
  return wire::CreateQuota(b, p, q.a, q.total, q.temperature, q.user.value_or(0),
                           q.user.has_value(), q.half_life, q.learned);
}
QuotaSpec GetQuota(const wire::Quota* q) {
  QuotaSpec out{Vec(q->p()), q->a(), q->total(), q->temperature(), std::nullopt, q->half_life()};
  if (q->has_user()) out.user = q->user();
  out.learned = q->learned();
  return out;
}

}  // namespace

// Nesting is bounded by the Verifier's depth limit; ValidateQuery holds the filter's own.
Offset<wire::Filter> PutFilter(FlatBufferBuilder& b, const Filter& f) {
  std::vector<Offset<wire::Filter>> children;
  children.reserve(f.children.size());
  for (const Filter& c : f.children) children.push_back(PutFilter(b, c));
  auto cv = children.empty() ? Offset<flatbuffers::Vector<Offset<wire::Filter>>>()
                             : b.CreateVector(children);
  auto vv = f.values.empty() ? Offset<flatbuffers::Vector<int64_t>>() : b.CreateVector(f.values);
  return wire::CreateFilter(b, uint8_t(f.op), uint8_t(f.field), vv, f.lo, f.hi, cv);
}
Result<Filter> GetFilter(const wire::Filter* w) {
  Filter f;
  f.op = Filter::Op(w->op());
  f.field = Filter::Field(w->field());
  f.values = Vec(w->values());
  f.lo = w->lo();
  f.hi = w->hi();
  if (w->children()) {
    for (const wire::Filter* c : *w->children()) {
      if (!c) return InvalidArgumentError("empty filter child");
      QV_ASSIGN_OR_RETURN(Filter child, GetFilter(c));
      f.children.push_back(std::move(child));
    }
  }
  return f;
}

namespace {

Offset<wire::Rerank> PutRerank(FlatBufferBuilder& b, const Rerank& r) {
  return wire::CreateRerank(b, r.mmr_lambda, r.window, r.max_consecutive_category,
                            r.per_category_cap, r.category_diversity);
}
Rerank GetRerank(const wire::Rerank* r) {
  return Rerank{r->mmr_lambda(), r->window(), r->max_consecutive_category(), r->per_category_cap(),
                r->category_diversity()};
}

Offset<wire::Mvke> PutMvke(FlatBufferBuilder& b, const MvkeSpec& m) {
  auto uv = PutFloatVectors(b, m.user_vectors);
  return wire::CreateMvke(b, uv, wire::MvkeStrategy(m.strategy), m.candidates, m.max_candidates);
}
MvkeSpec GetMvke(const wire::Mvke* m) {
  return MvkeSpec{GetFloatVectors(m->user_vectors()), MvkeStrategy(m->strategy()), m->candidates(),
                  m->max_candidates()};
}

Offset<wire::Fresh> PutFresh(FlatBufferBuilder& b, const Fresh& f) {
  return wire::CreateFresh(b, f.pool, f.now, f.boost, f.half_life, f.horizon, f.window);
}
Fresh GetFresh(const wire::Fresh* f) {
  return Fresh{f->pool(), f->now(), f->boost(), f->half_life(), f->horizon(), f->window()};
}

Offset<wire::Channels> PutChannels(FlatBufferBuilder& b, const Channels& x) {
  auto seeds = b.CreateVector(x.seed_items);
  auto i2i = b.CreateString(x.i2i_kind);
  auto u2u = b.CreateString(x.u2u_kind);
  return wire::CreateChannels(b, x.user.has_value(), x.user.value_or(0), seeds, x.u2i, x.u2i2i,
                              x.u2u2i, x.seeds, x.per_seed, x.users, x.per_user, i2i, u2u, x.w_sim,
                              x.w_dup, x.w_div, x.exclude_seen, x.channel_weights[0],
                              x.channel_weights[1], x.channel_weights[2]);
}
Channels GetChannels(const wire::Channels* x) {
  Channels ch;
  if (x->has_user()) ch.user = x->user();
  ch.seed_items = Vec(x->seed_items());
  ch.u2i = x->u2i();
  ch.u2i2i = x->u2i2i();
  ch.u2u2i = x->u2u2i();
  ch.seeds = x->seeds();
  ch.per_seed = x->per_seed();
  ch.users = x->users();
  ch.per_user = x->per_user();
  if (x->i2i_kind()) ch.i2i_kind = x->i2i_kind()->str();
  if (x->u2u_kind()) ch.u2u_kind = x->u2u_kind()->str();
  ch.w_sim = x->w_sim();
  ch.w_dup = x->w_dup();
  ch.w_div = x->w_div();
  ch.exclude_seen = x->exclude_seen();
  ch.channel_weights = {x->w_u2i(), x->w_u2i2i(), x->w_u2u2i()};
  return ch;
}

// `Put` of the optional operator, or an absent table.
template <typename T, typename W>
Offset<W> PutIf(FlatBufferBuilder& b, const std::optional<T>& x,
                Offset<W> (*put)(FlatBufferBuilder&, const T&)) {
  return x ? put(b, *x) : Offset<W>();
}

}  // namespace

Offset<wire::Search> PutSearch(FlatBufferBuilder& b, const SearchCall& c) {
  const QuerySpec& q = c.query;
  const bool one = q.vectors.size() == 1;
  auto v = b.CreateVector(one ? q.vectors[0] : std::vector<float>());
  auto n = b.CreateString(c.collection);
  auto vs = one ? Offset<FloatVectors>() : PutFloatVectors(b, q.vectors);
  auto w = q.weights.empty() ? Offset<flatbuffers::Vector<float>>() : b.CreateVector(q.weights);
  auto quota = PutIf(b, q.quota, PutQuota);
  auto filter = PutIf(b, q.filter, PutFilter);
  auto rerank = PutIf(b, q.rerank, PutRerank);
  auto mvke = PutIf(b, q.mvke, PutMvke);
  auto fresh = PutIf(b, q.fresh, PutFresh);
  auto channels = PutIf(b, q.channels, PutChannels);
  auto exclude =
      q.exclude.empty() ? Offset<flatbuffers::Vector<uint64_t>>() : b.CreateVector(q.exclude);
  auto shards =
      q.shards.empty() ? Offset<flatbuffers::Vector<uint32_t>>() : b.CreateVector(q.shards);
  return wire::CreateSearch(b, n, v, q.k, q.ef, q.nprobe, q.refine, vs,
                            wire::Aggregate(q.aggregate), w, quota, filter, rerank, mvke, fresh,
                            c.with_payload, channels, exclude, c.min_seq, shards);
}

Result<SearchCall> GetSearch(const wire::Search* s) {
  SearchCall c;
  c.collection = Str(s->collection());
  QuerySpec& q = c.query;
  q.vectors = GetFloatVectors(s->vectors());
  if (s->vector() && s->vector()->size() > 0) {
    if (!q.vectors.empty()) return InvalidArgumentError("give either vector or vectors, not both");
    q.vectors.push_back(Vec(s->vector()));
  }
  q.k = s->k();
  q.ef = s->ef();
  q.nprobe = s->nprobe();
  q.refine = s->refine();
  q.aggregate = Aggregate(s->aggregate());
  q.weights = Vec(s->weights());
  if (s->quota()) q.quota = GetQuota(s->quota());
  if (s->filter()) {
    QV_ASSIGN_OR_RETURN(q.filter, GetFilter(s->filter()));
  }
  if (s->rerank()) q.rerank = GetRerank(s->rerank());
  if (s->mvke()) q.mvke = GetMvke(s->mvke());
  if (s->fresh()) q.fresh = GetFresh(s->fresh());
  if (s->channels()) q.channels = GetChannels(s->channels());
  q.exclude = Vec(s->exclude());
  q.shards = Vec(s->shards());
  c.with_payload = s->payload();
  c.min_seq = s->min_seq();
  return c;
}

Offset<wire::SearchResult> PutSearchResult(FlatBufferBuilder& b, const SearchResult& s) {
  std::vector<wire::Hit> hits;
  hits.reserve(s.hits.size());
  for (const Hit& h : s.hits) hits.emplace_back(h.id, h.score);
  auto v = b.CreateVectorOfStructs(hits);
  auto opt = [&](const auto& x) {
    return x.empty() ? decltype(b.CreateVector(x))() : b.CreateVector(x);
  };
  auto hv = opt(s.hit_vector);
  auto hc = opt(s.hit_cluster);
  auto qs = opt(s.quotas);
  auto pc = opt(s.per_cluster);
  auto hp = s.hit_payload.empty() ? Offset<flatbuffers::Vector<Offset<flatbuffers::String>>>()
                                  : b.CreateVectorOfStrings(s.hit_payload);
  auto hch = opt(s.hit_channels);
  return wire::CreateSearchResult(b, v, hv, hc, qs, pc, hp, hch, s.seq);
}

SearchResult GetSearchResult(const wire::SearchResult* w) {
  SearchResult out;
  if (const auto* hits = w->hits()) {
    for (const wire::Hit* h : *hits) out.hits.push_back({h->id(), h->score()});
  }
  out.hit_vector = Vec(w->hit_vector());
  out.hit_cluster = Vec(w->hit_cluster());
  out.quotas = Vec(w->quotas());
  out.per_cluster = Vec(w->per_cluster());
  if (const auto* hp = w->hit_payload()) {
    for (const flatbuffers::String* x : *hp)
      out.hit_payload.push_back(x ? x->str() : std::string());
  }
  out.hit_channels = Vec(w->hit_channels());
  out.seq = w->seq();
  return out;
}

}  // namespace quiver::net::wirecodec
