#include "net/router.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <future>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster/versions.h"
#include "engine/query.h"

namespace quiver::net {

namespace {

using Clock = std::chrono::steady_clock;

// Answers that say this replica cannot serve the request now; another replica may.
bool Retryable(StatusCode code) {
  switch (code) {
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kNotFound:
    case StatusCode::kInternal:
    case StatusCode::kAborted:
    case StatusCode::kUnknown:
    case StatusCode::kCancelled:
      return true;
    default:
      return false;
  }
}

bool Boosted(const QuerySpec& q) { return q.fresh && q.fresh->boost > 0; }

using Answer = Router::Answer;

struct Entry {
  Hit hit;
  uint32_t vector = 0;
  int32_t cluster = -1;
  std::string payload;
  uint8_t channels = 0;
};

// What every replica is asked when several answer (the same for each). The candidates: one
// search, or with Split one per query vector; with the freshness boost, also the best of the
// items younger than the horizon. The router then boosts and re-ranks them itself, as
// RunQuery (engine/query.cc) does on one node.
struct Subs {
  std::vector<SearchCall> calls;
  size_t main = 1;     // calls[0, main): the candidates (several: one per vector)
  bool young = false;  // calls[main, 2 main): the young candidates (as many lists as main)
  size_t fetch = 0;    // candidates kept per list (no quota; 0: one node answers everything)
  size_t keep = 0;     // after the boost (no quota)
};

// A multi-vector search aggregated by sum or weights scores an item over the vectors whose own
// top k holds it (docs/queries.md): each shard's top k per vector is deeper than the global one,
// so the shards are asked for each vector's list and the router aggregates (a max, or a quota
// whose clusters are each whole on one shard, merges exactly without that).
bool Split(const QuerySpec& q) {
  return q.vectors.size() > 1 && q.aggregate != Aggregate::kMax && !q.quota;
}

Subs SubsFor(const SearchCall& call, bool several, int64_t now) {
  Subs subs;
  const QuerySpec& q = call.query;
  if (!several) {
    subs.calls.push_back(call);
    return subs;
  }
  SearchCall base = call;
  QuerySpec& b = base.query;
  b.rerank.reset();
  subs.keep =
      q.rerank ? std::max<size_t>(q.k, q.rerank->window ? q.rerank->window : 3 * size_t(q.k)) : q.k;
  subs.fetch =
      Boosted(q) ? std::max<size_t>(subs.keep, q.fresh->window ? q.fresh->window : 3 * size_t(q.k))
                 : subs.keep;
  if (b.fresh) {
    b.fresh->now = now;  // one clock for every shard
    b.fresh->boost = 0;
    b.fresh->half_life = 0;
    b.fresh->horizon = 0;
    b.fresh->window = 0;
  }
  if (!q.quota) b.k = uint32_t(subs.fetch);
  if (Split(q)) {
    for (const std::vector<float>& v : q.vectors) {
      SearchCall one = base;
      one.query.vectors = {v};
      one.query.aggregate = Aggregate::kMax;
      one.query.weights.clear();
      subs.calls.push_back(std::move(one));
    }
    subs.main = subs.calls.size();
  } else {
    subs.calls.push_back(base);
  }
  if (Boosted(q) && !q.quota) {
    const Filter young = engine::YoungFilter(q.filter, *q.fresh, now);
    for (size_t j = 0; j < subs.main; ++j) {
      SearchCall one = subs.calls[j];
      one.query.filter = young;
      subs.calls.push_back(std::move(one));
    }
    subs.young = true;
  }
  return subs;
}

Entry EntryOf(SearchResult& r, size_t i) {
  Entry e;
  e.hit = r.hits[i];
  if (i < r.hit_vector.size()) e.vector = r.hit_vector[i];
  if (i < r.hit_cluster.size()) e.cluster = r.hit_cluster[i];
  if (i < r.hit_payload.size()) e.payload = std::move(r.hit_payload[i]);
  if (i < r.hit_channels.size()) e.channels = r.hit_channels[i];
  return e;
}

bool Better(const Entry& a, const Entry& b) {
  return a.hit.score != b.hit.score ? a.hit.score > b.hit.score : a.hit.id < b.hit.id;
}

// Part `part` of every answer merged: each item once (its best score), best first.
std::vector<Entry> Gather(std::vector<Answer>& answers, size_t part) {
  std::vector<Entry> list;
  std::unordered_map<uint64_t, size_t> seen;
  for (size_t a = 0; a < answers.size(); ++a) {
    SearchResult& r = answers[a].parts[part];
    for (size_t i = 0; i < r.hits.size(); ++i) {
      Entry e = EntryOf(r, i);
      auto [it, fresh] = seen.emplace(e.hit.id, list.size());
      if (fresh) {
        list.push_back(std::move(e));
      } else if (e.hit.score > list[it->second].hit.score) {
        list[it->second] = std::move(e);
      }
    }
  }
  std::sort(list.begin(), list.end(), Better);
  return list;
}

// Split answers: each vector's global top k from the shards' lists, then the aggregate over
// them as the engine computes it (the vectors in order, each item once per list).
std::vector<Entry> Aggregate(const QuerySpec& q, std::vector<Answer>& answers, size_t first,
                             size_t lists, size_t k) {
  std::unordered_map<uint64_t, std::pair<Entry, float>> by_id;  // entry, best contribution
  for (size_t j = 0; j < lists; ++j) {
    std::vector<Entry> list = Gather(answers, first + j);
    if (list.size() > k) list.resize(k);
    const float w = q.aggregate == Aggregate::kWeighted ? q.weights[j] : 1.0f;
    for (Entry& e : list) {
      const float contribution = w * e.hit.score;
      auto [it, fresh] = by_id.try_emplace(e.hit.id);
      auto& [x, best] = it->second;
      if (fresh) {
        x = std::move(e);
        x.hit.score = contribution;
        best = -INFINITY;
      } else {
        x.hit.score += contribution;
      }
      if (contribution > best) {
        best = contribution;
        x.vector = uint32_t(j);
      }
    }
  }
  std::vector<Entry> out;
  out.reserve(by_id.size());
  for (auto& [id, x] : by_id) out.push_back(std::move(x.first));
  std::sort(out.begin(), out.end(), Better);
  return out;
}

// The candidates the answers hold, as one node would have them before boosting and re-ranking;
// with a quota, `quotas` becomes each cluster's M_k from the replica that searched it.
std::vector<Entry> Candidates(const SearchCall& call, const CollectionSchema& schema,
                              const Subs& subs, std::vector<uint32_t>* quotas,
                              std::vector<Answer>& answers) {
  const QuerySpec& q = call.query;
  const uint32_t shards = std::max<uint32_t>(schema.shards, 1);
  const size_t c = schema.clusters;
  const size_t k = subs.fetch ? subs.fetch : q.k;
  std::vector<Entry> entries =
      subs.main > 1 ? Aggregate(q, answers, 0, subs.main, k) : Gather(answers, 0);
  if (q.quota) {
    for (const Answer& a : answers) {
      const SearchResult& r = a.parts[0];
      if (r.quotas.size() != c) continue;
      for (size_t cl = 0; cl < c; ++cl) {
        if (std::binary_search(a.shards.begin(), a.shards.end(), uint32_t(cl % shards)))
          (*quotas)[cl] = r.quotas[cl];
      }
    }
    // Top M_k per cluster (two replicas of a shard may each have answered for it).
    std::vector<uint32_t> taken(c, 0);
    std::erase_if(entries, [&](const Entry& e) {
      if (e.cluster < 0 || size_t(e.cluster) >= c) return true;
      return taken[size_t(e.cluster)]++ >= (*quotas)[size_t(e.cluster)];
    });
  } else if (entries.size() > k) {
    entries.resize(k);
  }
  if (subs.young) {
    std::vector<Entry> young = subs.main > 1
                                   ? Aggregate(q, answers, subs.main, subs.main, subs.fetch)
                                   : Gather(answers, subs.main);
    if (young.size() > subs.fetch) young.resize(subs.fetch);
    std::unordered_map<uint64_t, size_t> at;
    for (size_t i = 0; i < entries.size(); ++i) at.emplace(entries[i].hit.id, i);
    for (Entry& e : young) {
      auto [it, added] = at.try_emplace(e.hit.id, entries.size());
      if (added) {
        entries.push_back(std::move(e));
      } else if (e.hit.score > entries[it->second].hit.score) {
        entries[it->second] = std::move(e);
      }
    }
  }
  return entries;
}

SearchResult Build(const SearchCall& call, const CollectionSchema& schema,
                   std::vector<uint32_t> quotas, const std::vector<Entry>& entries, uint64_t seq) {
  const QuerySpec& q = call.query;
  const size_t c = schema.clusters;
  SearchResult out;
  const bool vectors = q.vectors.size() > 1 || q.mvke;
  for (const Entry& e : entries) {
    out.hits.push_back(e.hit);
    if (vectors) out.hit_vector.push_back(e.vector);
    if (c > 0) out.hit_cluster.push_back(e.cluster);
    if (call.with_payload) out.hit_payload.push_back(e.payload);
    if (q.channels) out.hit_channels.push_back(e.channels);
  }
  if (q.quota) out.quotas = std::move(quotas);
  if (c > 0) {
    out.per_cluster.assign(c, 0);
    for (const Entry& e : entries) {
      if (e.cluster >= 0 && size_t(e.cluster) < c) ++out.per_cluster[size_t(e.cluster)];
    }
  }
  out.seq = seq;
  return out;
}

}  // namespace

std::shared_ptr<client::Client> Router::ClientFor(const cluster::MemberInfo& m) {
  const std::string address = m.host + ":" + std::to_string(m.port);
  {
    std::lock_guard lock(mu_);
    Peer& p = peers_[m.id];
    if (p.client && p.address == address) return p.client;
  }
  client::ClientOptions o;
  o.host = m.host;
  o.port = m.port;
  o.api_key = options_.api_key;
  o.pool_size = 8;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.max_attempts = 1;  // another replica is the retry
  auto c = client::Client::Connect(o);
  if (!c.ok()) return nullptr;
  std::shared_ptr<client::Client> shared = std::move(*c);
  std::lock_guard lock(mu_);
  Peer& p = peers_[m.id];
  p.address = address;
  p.client = shared;
  return shared;
}

Router::InFlight Router::Send(const cluster::MemberInfo& m, std::vector<Call> calls,
                              std::chrono::milliseconds deadline) {
  InFlight out;
  std::shared_ptr<client::Client> c = ClientFor(m);
  if (!c) {
    out.failed.assign(calls.size(), Reply{UnavailableError("cannot connect to node '" + m.id + "'"),
                                          std::monostate{}});
    return out;
  }
  out.batch = c->Start(std::move(calls), deadline);
  return out;
}

std::string Router::RenderMetrics() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, uint64_t value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(value) + "\n";
  };
  metric("quiver_router_routed_total", "counter",
         "Searches this node fanned out to the replicas of other shards.", routed_.load());
  metric("quiver_router_subrequests_total", "counter",
         "Calls sent to replicas (this node's own included) for routed searches.",
         subrequests_.load());
  metric("quiver_router_replica_failures_total", "counter",
         "Replicas that failed a routed call (asked again of another replica).", failures_.load());
  metric("quiver_cluster_members", "gauge", "Nodes in this node's view of the cluster.",
         members_.Members().size());
  metric("quiver_cluster_etcd_up", "gauge", "1 if the last exchange with etcd succeeded.",
         members_.EtcdStatus().ok() ? 1 : 0);
  return out;
}

void Router::Penalize(const std::string& id) {
  failures_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  peers_[id].avoid_until = Clock::now() + options_.penalty;
}

std::vector<cluster::MemberInfo> Router::View(const std::string& collection, uint32_t shards) {
  const std::string& self = node_.node_id();
  std::vector<cluster::MemberInfo> members = members_.Members();
  auto it = std::find_if(members.begin(), members.end(),
                         [&](const cluster::MemberInfo& m) { return m.id == self; });
  if (it == members.end()) {
    cluster::MemberInfo m;
    m.id = self;
    members.push_back(m);
    it = members.end() - 1;
  }
  it->shards.clear();
  for (uint32_t s = 0; s < shards; ++s) {
    if (node_.Hosts(s)) it->shards.push_back(s);
  }
  it->blocked.clear();
  it->applied.erase(collection);
  if (!node_.CheckServing(collection).ok()) it->blocked.push_back(collection);
  for (const cluster::FollowerState& f : node_.Followers()) {
    if (f.collection == collection) it->applied[collection] = f.applied;
  }
  return members;
}

std::optional<Reply> Router::Fanout(const std::string& collection, uint32_t shards,
                                    std::vector<uint32_t> unanswered, Clock::time_point deadline,
                                    const Plan& calls_for, const Local& local,
                                    std::vector<Answer>* answers,
                                    std::vector<cluster::MemberInfo>* known, bool* several) {
  const std::string local_name = cluster::LocalName(collection);  // what members report
  const std::string& self = node_.node_id();
  std::set<std::string> failed;  // replicas that failed this request
  Status last = Status::Ok();
  while (!unanswered.empty()) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      return Reply{
          Status(StatusCode::kDeadlineExceeded,
                 "search of '" + collection + "': no replica answered for every shard in time" +
                     (last.ok() ? "" : " (last: " + last.ToString() + ")")),
          std::monostate{}};
    }
    const std::vector<cluster::MemberInfo> members = View(local_name, shards);
    *known = members;
    // Rotation: serving, following, within max_lag of the shard's best replica.
    std::vector<uint64_t> best(shards, 0);
    auto serving = [&](const cluster::MemberInfo& m) {
      return std::find(m.blocked.begin(), m.blocked.end(), local_name) == m.blocked.end() &&
             m.applied.count(local_name) > 0;
    };
    for (const cluster::MemberInfo& m : members) {
      if (!serving(m)) continue;
      for (uint32_t s = 0; s < shards; ++s) {
        if (m.Hosts(s)) best[s] = std::max(best[s], m.applied.at(local_name));
      }
    }
    const cluster::ShardAssignment assignment = members_.Assignment();
    std::map<std::string, std::vector<uint32_t>> plan;
    std::vector<uint32_t> orphans;
    {
      std::lock_guard lock(mu_);
      for (uint32_t s : unanswered) {
        const cluster::MemberInfo* pick = nullptr;
        std::tuple<int, uint64_t, std::string> pick_key;
        for (const cluster::MemberInfo& m : members) {
          if (!cluster::Membership::Assigned(assignment, m, s) || !serving(m) ||
              failed.count(m.id) > 0)
            continue;
          if (m.applied.at(local_name) + options_.max_lag < best[s]) continue;
          if (m.id != self && m.port == 0) continue;
          auto p = peers_.find(m.id);
          if (p != peers_.end() && p->second.avoid_until > now) continue;
          const int rank = plan.count(m.id) > 0 ? 0 : m.id == self ? 1 : 2;
          std::tuple<int, uint64_t, std::string> key{
              rank, p == peers_.end() ? 0 : p->second.outstanding, m.id};
          if (pick == nullptr || key < pick_key) {
            pick = &m;
            pick_key = std::move(key);
          }
        }
        if (pick == nullptr) {
          orphans.push_back(s);
        } else {
          plan[pick->id].push_back(s);
        }
      }
    }
    if (!orphans.empty()) {
      // Every replica of a shard is out of rotation (or failed this request): wait for one.
      last = UnavailableError("no replica of shard " + std::to_string(orphans[0]) +
                              " of collection '" + collection + "' is in rotation");
      failed.clear();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    // Whether several replicas answer: fixed once an answer is kept (every answer must hold
    // the same calls).
    if (answers->empty()) *several = plan.size() > 1;
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const auto budget = std::max(remaining, std::chrono::milliseconds(1));
    struct Pending {
      std::string id;
      std::vector<uint32_t> shards;
      std::vector<Call> calls;
      InFlight sent;
    };
    // Every replica's calls are written before this node runs its own part, which comes first
    // among the answers waited for: the searches run side by side.
    std::vector<Pending> pending;
    std::vector<std::pair<std::string, std::vector<uint32_t>>> order(plan.begin(), plan.end());
    std::stable_partition(order.begin(), order.end(),
                          [&](const auto& entry) { return entry.first == self; });
    for (auto& [id, assigned] : order) {
      Result<std::vector<Call>> calls = calls_for(assigned, *several);
      if (!calls.ok()) return Reply{calls.status(), std::monostate{}};
      pending.push_back(Pending{id, assigned, std::move(*calls), {}});
    }
    // Counted outstanding from here until its answers are read: every one of them, also when
    // an answer ends the request early.
    {
      std::lock_guard lock(mu_);
      for (const Pending& p : pending) ++peers_[p.id].outstanding;
    }
    for (Pending& p : pending) {
      subrequests_.fetch_add(p.calls.size(), std::memory_order_relaxed);
      if (p.id != self) {
        auto m = std::find_if(members.begin(), members.end(),
                              [&](const cluster::MemberInfo& x) { return x.id == p.id; });
        p.sent = Send(*m, p.calls, budget);
      }
    }
    for (size_t i = 0; i < pending.size(); ++i) {
      Pending& p = pending[i];
      std::vector<Reply> replies;
      if (p.id == self) {
        for (const Call& c : p.calls) replies.push_back(local(c));
      } else {
        replies = p.sent.Wait();
      }
      {
        std::lock_guard lock(mu_);
        --peers_[p.id].outstanding;
      }
      Status failure = Status::Ok();
      for (Reply& reply : replies) {
        if (reply.status.ok()) continue;
        if (!Retryable(reply.status.code())) {
          // The request ends with this answer: the others are no longer waited for.
          std::lock_guard lock(mu_);
          for (size_t j = i + 1; j < pending.size(); ++j) --peers_[pending[j].id].outstanding;
          return std::move(reply);
        }
        failure = Status(reply.status.code(),
                         "node '" + p.id + "': " + std::string(reply.status.message()));
        break;
      }
      if (failure.ok() && replies.size() == p.calls.size()) {
        for (uint32_t s : p.shards) std::erase(unanswered, s);
        answers->push_back({p.id, p.shards, std::move(replies)});
        continue;
      }
      last = failure.ok() ? InternalError("node '" + p.id + "' answered too few calls") : failure;
      failed.insert(p.id);
      Penalize(p.id);
    }
  }
  return std::nullopt;
}

std::optional<Reply> Router::Route(const SearchCall& call, const CollectionSchema& schema,
                                   const Local& local) {
  const QuerySpec& q = call.query;
  if (!q.shards.empty()) return std::nullopt;  // a router's sub-request: answered here
  const uint32_t shards = std::max<uint32_t>(schema.shards, 1);
  if (Status s = engine::ValidateQuery(q, schema.dim, schema.metric, schema.clusters, schema.topics,
                                       shards);
      !s.ok()) {
    return Reply{std::move(s), std::monostate{}};
  }
  // This node hosts every shard and serves the collection: the plain local search.
  bool self_hosts_all = true;
  {
    const cluster::ShardAssignment assignment = members_.Assignment();
    cluster::MemberInfo self;
    self.id = node_.node_id();
    for (uint32_t s = 0; s < shards; ++s) {
      if (node_.Hosts(s)) self.shards.push_back(s);
    }
    for (uint32_t s = 0; s < shards; ++s) {
      self_hosts_all = self_hosts_all && cluster::Membership::Assigned(assignment, self, s);
    }
  }
  const std::string local_name = cluster::LocalName(call.collection);
  if (self_hosts_all && node_.Follows(local_name) && node_.CheckServing(local_name).ok())
    return std::nullopt;

  routed_.fetch_add(1, std::memory_order_relaxed);
  const Clock::time_point deadline = Clock::now() + options_.deadline;
  if (q.channels) return RouteChannels(call, schema, local, deadline);
  // One clock for the freshness operators of every shard.
  const int64_t now_s = q.fresh && q.fresh->now ? q.fresh->now : int64_t(std::time(nullptr));
  std::vector<uint32_t> all(shards);
  for (uint32_t s = 0; s < shards; ++s) all[s] = s;
  std::vector<cluster::MemberInfo> known;  // the members as last read

  // A quota: M_k per cluster, computed here over every cluster. With p "auto" the similarity
  // of the query to each cluster's centroid comes from the shard holding the cluster first;
  // the shards then get M_k itself as their p (a = 1: AllocateQuotas gives back exactly M_k).
  SearchCall routed = call;
  std::vector<uint32_t> quotas;
  std::vector<uint32_t> unanswered = all;
  if (q.quota) {
    if (q.quota->learned) {
      // The intent plugin reads the clusters of a user's items, and a node holds only its
      // shards' items: its lists would cover its own clusters only.
      return Reply{FailedPreconditionError(
                       "quota p \"learned\" is not served in cluster mode (a node holds only its "
                       "shards' clusters); use p \"history\", which each shard weighs and the "
                       "router adds up"),
                   std::monostate{}};
    }
    std::vector<double> p(q.quota->p.begin(), q.quota->p.end());
    if (p.empty()) {
      std::vector<Answer> intents;
      bool several = false;
      // p "history": each shard weighs the user's events on its items (the user's record is
      // on every node); else each gives its clusters' similarity to the query.
      const std::optional<uint64_t> user = q.quota->user;
      auto ask = [&](const std::vector<uint32_t>& assigned, bool) -> Result<std::vector<Call>> {
        return std::vector<Call>{
            Call(IntentCall{call.collection, user ? std::vector<std::vector<float>>{} : q.vectors,
                            assigned, user, q.quota->half_life})};
      };
      if (auto failed = Fanout(call.collection, shards, all, deadline, ask, local, &intents, &known,
                               &several)) {
        return failed;
      }
      std::vector<double> sim(schema.clusters, user ? 0.0 : -INFINITY);
      for (Answer& a : intents) {
        const auto* r = std::get_if<IntentResult>(&a.replies[0].body);
        if (r == nullptr || r->similarity.size() != schema.clusters) {
          return Reply{InternalError("node '" + a.node + "' answered an intent with another body"),
                       std::monostate{}};
        }
        for (size_t k = 0; k < schema.clusters; ++k) {
          if (std::binary_search(a.shards.begin(), a.shards.end(), uint32_t(k % shards)))
            sim[k] = r->similarity[k];
        }
      }
      if (user) {
        if (Status s = engine::CheckHistoryIntent(sim, *user); !s.ok())
          return Reply{std::move(s), std::monostate{}};
        p = std::move(sim);
      } else {
        p = engine::IntentFrom(sim, q.quota->temperature);
      }
    }
    quotas = engine::AllocateQuotas(p, q.quota->a, q.quota->total);
    if (q.quota->p.empty()) {
      QuotaSpec exact = *q.quota;
      exact.p.assign(quotas.begin(), quotas.end());
      exact.a = 1;
      exact.user.reset();
      exact.half_life = 0;
      routed.query.quota = std::move(exact);
    }
    unanswered.clear();
    for (uint32_t s = 0; s < shards; ++s) {
      bool any = false;
      for (size_t k = s; k < quotas.size(); k += shards) any = any || quotas[k] > 0;
      if (any) unanswered.push_back(s);
    }
    if (unanswered.empty()) {  // nothing to find (every cluster empty)
      SearchResult none;
      none.quotas = quotas;
      none.per_cluster.assign(schema.clusters, 0);
      return Reply{Status::Ok(), ReplyBody(std::move(none))};
    }
  }

  bool several = false;
  std::vector<Answer> answers;
  auto calls_for = [&](const std::vector<uint32_t>& assigned,
                       bool many) -> Result<std::vector<Call>> {
    std::vector<Call> calls;
    for (SearchCall& sub : SubsFor(routed, many, now_s).calls) {
      sub.query.shards = assigned;
      calls.emplace_back(std::move(sub));
    }
    return calls;
  };
  if (auto failed = Fanout(call.collection, shards, unanswered, deadline, calls_for, local,
                           &answers, &known, &several)) {
    return failed;
  }

  uint64_t seq = UINT64_MAX;
  for (Answer& a : answers) {
    for (Reply& r : a.replies) {
      auto* result = std::get_if<SearchResult>(&r.body);
      if (result == nullptr) {
        return Reply{InternalError("node '" + a.node + "' answered a search with another body"),
                     std::monostate{}};
      }
      seq = std::min(seq, result->seq);
      a.parts.push_back(std::move(*result));
    }
  }
  if (!several) {  // one replica answered everything itself
    SearchResult& r = answers[0].parts[0];
    r.seq = seq;
    return Reply{Status::Ok(), ReplyBody(std::move(r))};
  }
  const Subs subs = SubsFor(routed, true, now_s);
  if (q.quota && quotas.empty()) quotas.assign(schema.clusters, 0);
  std::vector<Entry> entries = Candidates(call, schema, subs, &quotas, answers);
  // The operators of RunQuery after retrieval, on the candidates: boost, re-rank.
  if (Boosted(q) || q.rerank) {
    // The candidates' records, from one replica of each shard holding some (another one if
    // that one fails, as for the searches).
    std::map<uint32_t, std::vector<size_t>> by_shard;
    for (size_t i = 0; i < entries.size(); ++i) {
      const uint32_t shard = schema.clusters > 0 && entries[i].cluster >= 0
                                 ? uint32_t(entries[i].cluster) % shards
                                 : cluster::IdShard(schema, entries[i].hit.id);
      by_shard[shard].push_back(i);
    }
    auto read = [&](const std::vector<uint32_t>& assigned) {
      std::vector<size_t> at;
      for (uint32_t s : assigned) {
        const auto it = by_shard.find(s);
        if (it != by_shard.end()) at.insert(at.end(), it->second.begin(), it->second.end());
      }
      return at;
    };
    std::vector<uint32_t> holding;
    holding.reserve(by_shard.size());
    for (const auto& [shard, at] : by_shard) holding.push_back(shard);
    std::vector<Answer> reads;
    bool several_reads = false;
    if (auto failed = Fanout(
            call.collection, shards, holding, deadline,
            [&](const std::vector<uint32_t>& assigned, bool) -> Result<std::vector<Call>> {
              GetCall get;
              get.collection = call.collection;
              for (size_t i : read(assigned)) get.ids.push_back(entries[i].hit.id);
              return std::vector<Call>{Call(std::move(get))};
            },
            local, &reads, &known, &several_reads)) {
      return failed;
    }
    std::vector<std::optional<ItemRecord>> items(entries.size());
    for (Answer& a : reads) {
      const std::vector<size_t> at = read(a.shards);
      auto* got = std::get_if<GetResult>(&a.replies[0].body);
      if (got == nullptr || got->items.size() != at.size()) {
        return Reply{InternalError("node '" + a.node + "' answered a read with another body"),
                     std::monostate{}};
      }
      for (size_t j = 0; j < at.size(); ++j) items[at[j]] = std::move(got->items[j]);
    }
    std::vector<QueryHit> hits(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      hits[i] = {entries[i].hit.id, entries[i].hit.score, uint32_t(i), entries[i].cluster};
    }
    if (Boosted(q)) {
      std::vector<int64_t> ts(hits.size(), 0);
      for (size_t i = 0; i < hits.size(); ++i) {
        if (items[hits[i].vector]) ts[i] = items[hits[i].vector]->timestamp;
      }
      engine::BoostScores(*q.fresh, now_s, ts, &hits);
      if (!q.quota && hits.size() > subs.keep) hits.resize(subs.keep);
    }
    if (q.rerank) {
      const bool mmr = q.rerank->mmr_lambda >= 0;
      std::vector<float> vectors(mmr ? hits.size() * schema.dim : 0, 0.0f);
      std::vector<std::optional<int64_t>> categories(hits.size());
      for (size_t i = 0; i < hits.size(); ++i) {
        const auto& item = items[hits[i].vector];
        if (!item) continue;
        categories[i] = item->category;
        if (mmr && item->vector.size() == schema.dim) {
          std::copy(item->vector.begin(), item->vector.end(), vectors.begin() + i * schema.dim);
        }
      }
      const size_t k = q.quota ? hits.size() : q.k;
      auto reranked =
          engine::Diversify(*q.rerank, std::move(hits), k, schema.dim, vectors, categories);
      if (!reranked.ok()) return Reply{reranked.status(), std::monostate{}};
      hits = std::move(*reranked);
    }
    std::vector<Entry> ordered;
    ordered.reserve(hits.size());
    for (const QueryHit& h : hits) {
      ordered.push_back(std::move(entries[h.vector]));
      ordered.back().hit.score = h.score;
    }
    entries = std::move(ordered);
  } else if (!q.quota && entries.size() > q.k) {
    entries.resize(q.k);
  }
  return Reply{Status::Ok(), ReplyBody(Build(call, schema, std::move(quotas), entries,
                                             seq == UINT64_MAX ? 0 : seq))};
}

Reply Router::RouteChannels(const SearchCall& call, const CollectionSchema& schema,
                            const Local& local, Clock::time_point deadline) {
  // Users and u2u lists are on every node (user writes go to every shard): read here. Items and
  // i2i lists are on their shards' replicas: an item's shard is known from its id without
  // clusters, else every shard is asked.
  class Data final : public engine::ChannelData {
   public:
    Data(Router& router, const SearchCall& call, const CollectionSchema& schema, const Local& local,
         Clock::time_point deadline)
        : r_(router), call_(call), schema_(schema), local_(local), deadline_(deadline) {}

    Result<std::optional<UserRecord>> User(uint64_t id) override {
      Reply reply = local_(Call(GetUserCall{call_.collection, id}));
      if (!reply.status.ok()) return reply.status;
      return std::get<UserResult>(reply.body).user;
    }
    Result<bool> HasListKind(const std::string& kind) override {
      // Plugin runs go through the write log: every node holds every kind's run record.
      Reply reply = local_(Call(ListListsCall{call_.collection}));
      if (!reply.status.ok()) return reply.status;
      const auto& lists = std::get<ListInfosResult>(reply.body).lists;
      return std::any_of(lists.begin(), lists.end(),
                         [&](const ListInfo& i) { return i.kind == kind; });
    }
    Result<std::vector<std::optional<std::vector<Hit>>>> Lists(
        const std::string& kind, std::span<const uint64_t> keys) override {
      std::vector<std::optional<std::vector<Hit>>> out(keys.size());
      if (kind == call_.query.channels->u2u_kind) {
        for (size_t i = 0; i < keys.size(); ++i) {
          Reply reply = local_(Call(GetListCall{call_.collection, kind, keys[i]}));
          if (!reply.status.ok()) return reply.status;
          out[i] = std::move(std::get<ListResult>(reply.body).list);
        }
        return out;
      }
      std::vector<Answer> answers;
      QV_RETURN_IF_ERROR(Ask(
          keys,
          [&](uint64_t key) {
            return Call(GetListCall{call_.collection, kind, key});
          },
          &answers));
      for (Answer& a : answers) {
        const std::vector<size_t> at = On(keys, a.shards);
        for (size_t j = 0; j < at.size(); ++j) {
          auto* l = std::get_if<ListResult>(&a.replies[j].body);
          if (l != nullptr && l->list && !out[at[j]]) out[at[j]] = std::move(l->list);
        }
      }
      return out;
    }
    Result<QueryResult> Search(const QuerySpec& q) override {
      SearchCall sub;
      sub.collection = call_.collection;
      sub.query = q;
      sub.min_seq = call_.min_seq;
      std::optional<Reply> routed = r_.Route(sub, schema_, local_);
      Reply reply = routed ? std::move(*routed) : local_(Call(sub));
      if (!reply.status.ok()) return reply.status;
      auto& res = std::get<SearchResult>(reply.body);
      seq_ = res.seq;
      QueryResult out;
      for (size_t i = 0; i < res.hits.size(); ++i) {
        out.hits.push_back({res.hits[i].id, res.hits[i].score,
                            i < res.hit_vector.size() ? res.hit_vector[i] : 0,
                            i < res.hit_cluster.size() ? res.hit_cluster[i] : -1});
      }
      return out;
    }
    Status Prefetch(std::span<const uint64_t> ids) override {
      std::vector<Answer> answers;
      // One read per replica: every id of its shards in one call.
      QV_RETURN_IF_ERROR(AskAll(ids, &answers));
      for (Answer& a : answers) {
        const std::vector<size_t> at = On(ids, a.shards);
        auto* got = std::get_if<GetResult>(&a.replies[0].body);
        if (got == nullptr || got->items.size() != at.size()) {
          return InternalError("node '" + a.node + "' answered a read with another body");
        }
        for (size_t j = 0; j < at.size(); ++j) {
          if (got->items[j]) items_[ids[at[j]]] = std::move(*got->items[j]);
        }
      }
      return Status::Ok();
    }
    bool Attrs(uint64_t id, engine::ItemAttrs* out) override {
      auto it = items_.find(id);
      if (it == items_.end()) return false;
      *out = engine::AttrsOf(it->second);
      return true;
    }
    size_t clusters() const override { return schema_.clusters; }

    const ItemRecord* Item(uint64_t id) const {
      auto it = items_.find(id);
      return it == items_.end() ? nullptr : &it->second;
    }
    uint64_t seq() const { return seq_; }

   private:
    // Which of `keys` the replica answering for `assigned` is asked about, in order.
    std::vector<size_t> On(std::span<const uint64_t> keys, const std::vector<uint32_t>& assigned) {
      std::vector<size_t> at;
      const uint32_t shards = std::max<uint32_t>(schema_.shards, 1);
      for (size_t i = 0; i < keys.size(); ++i) {
        const bool mine =
            schema_.clusters > 0 || std::binary_search(assigned.begin(), assigned.end(),
                                                       cluster::IdShard(schema_, keys[i]) % shards);
        if (mine) at.push_back(i);
      }
      return at;
    }
    std::vector<uint32_t> Holding(std::span<const uint64_t> keys) {
      const uint32_t shards = std::max<uint32_t>(schema_.shards, 1);
      std::vector<uint32_t> out;
      for (uint32_t s = 0; s < shards; ++s) {
        for (uint64_t key : keys) {
          if (schema_.clusters > 0 || cluster::IdShard(schema_, key) % shards == s) {
            out.push_back(s);
            break;
          }
        }
      }
      return out;
    }
    // One call per key, to a replica of the key's shard (or of every shard).
    Status Ask(std::span<const uint64_t> keys, const std::function<Call(uint64_t)>& make,
               std::vector<Answer>* answers) {
      bool several = false;
      std::vector<cluster::MemberInfo> known;
      auto calls = [&](const std::vector<uint32_t>& assigned, bool) -> Result<std::vector<Call>> {
        std::vector<Call> out;
        for (size_t i : On(keys, assigned)) out.push_back(make(keys[i]));
        return out;
      };
      std::optional<Reply> failed =
          r_.Fanout(call_.collection, std::max<uint32_t>(schema_.shards, 1), Holding(keys),
                    deadline_, calls, local_, answers, &known, &several);
      return failed ? failed->status : Status::Ok();
    }
    Status AskAll(std::span<const uint64_t> ids, std::vector<Answer>* answers) {
      bool several = false;
      std::vector<cluster::MemberInfo> known;
      auto calls = [&](const std::vector<uint32_t>& assigned, bool) -> Result<std::vector<Call>> {
        GetCall get;
        get.collection = call_.collection;
        for (size_t i : On(ids, assigned)) get.ids.push_back(ids[i]);
        return std::vector<Call>{Call(std::move(get))};
      };
      std::optional<Reply> failed =
          r_.Fanout(call_.collection, std::max<uint32_t>(schema_.shards, 1), Holding(ids),
                    deadline_, calls, local_, answers, &known, &several);
      return failed ? failed->status : Status::Ok();
    }

    Router& r_;
    const SearchCall& call_;
    const CollectionSchema& schema_;
    const Local& local_;
    const Clock::time_point deadline_;
    std::unordered_map<uint64_t, ItemRecord> items_;
    uint64_t seq_ = 0;
  };
  Data data(*this, call, schema, local, deadline);
  Result<QueryResult> r = engine::RunChannels(call.query, data);
  if (!r.ok()) return Reply{r.status(), std::monostate{}};
  const QuerySpec& q = call.query;
  const bool vectors = q.vectors.size() > 1 || q.mvke;
  SearchResult out;
  for (const QueryHit& h : r->hits) {
    out.hits.push_back({h.id, h.score});
    if (vectors) out.hit_vector.push_back(h.vector);
    if (schema.clusters > 0) out.hit_cluster.push_back(h.cluster);
    out.hit_channels.push_back(h.channels);
    if (call.with_payload) {
      const ItemRecord* item = data.Item(h.id);
      out.hit_payload.push_back(item != nullptr ? item->payload : std::string());
    }
  }
  out.per_cluster = std::move(r->per_cluster);
  out.seq = data.seq() != 0 ? data.seq() : node_.Applied(cluster::LocalName(call.collection));
  return Reply{Status::Ok(), ReplyBody(std::move(out))};
}

}  // namespace quiver::net
