#include "net/router.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

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

// Operators that need every candidate in one place.
const char* OneNodeOperator(const QuerySpec& q) {
  if (q.rerank) return "diversity re-ranking (rerank)";
  if (q.fresh && q.fresh->boost > 0) return "the freshness boost";
  if (q.channels) return "channels";
  if (q.quota && q.quota->p.empty()) return "a quota with p \"auto\"";
  return nullptr;
}

// One replica's answer for some shards: one result, or with a split search (Split) one per
// query vector.
struct Answer {
  std::vector<uint32_t> shards;
  std::vector<SearchResult> parts;
};

// A multi-vector search aggregated by sum or weights scores an item over the vectors whose own
// top k holds it (docs/queries.md): each shard's top k per vector is deeper than the global one,
// so the shards are asked for each vector's list and the router aggregates (a max, or a quota
// whose clusters are each whole on one shard, merges exactly without that).
bool Split(const QuerySpec& q) {
  return q.vectors.size() > 1 && q.aggregate != Aggregate::kMax && !q.quota;
}

struct Entry {
  Hit hit;
  uint32_t vector = 0;
  int32_t cluster = -1;
  std::string payload;
  uint8_t channels = 0;
};

Entry EntryOf(SearchResult& r, size_t i) {
  Entry e;
  e.hit = r.hits[i];
  if (i < r.hit_vector.size()) e.vector = r.hit_vector[i];
  if (i < r.hit_cluster.size()) e.cluster = r.hit_cluster[i];
  if (i < r.hit_payload.size()) e.payload = std::move(r.hit_payload[i]);
  if (i < r.hit_channels.size()) e.channels = r.hit_channels[i];
  return e;
}

// Split answers: each vector's global top k from the shards' lists, then the aggregate over
// them as the engine computes it (the vectors in order, each item once per list).
std::vector<Entry> Aggregate(const QuerySpec& q, std::vector<Answer>& answers) {
  std::unordered_map<uint64_t, std::pair<Entry, float>> by_id;  // entry, best contribution
  for (size_t j = 0; j < q.vectors.size(); ++j) {
    std::vector<Entry> list;
    std::unordered_map<uint64_t, size_t> seen;
    for (Answer& a : answers) {
      SearchResult& r = a.parts[j];
      for (size_t i = 0; i < r.hits.size(); ++i) {
        Entry e = EntryOf(r, i);
        if (seen.emplace(e.hit.id, list.size()).second) list.push_back(std::move(e));
      }
    }
    std::sort(list.begin(), list.end(), [](const Entry& a, const Entry& b) {
      return a.hit.score != b.hit.score ? a.hit.score > b.hit.score : a.hit.id < b.hit.id;
    });
    if (list.size() > q.k) list.resize(q.k);
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
  return out;
}

SearchResult Merge(const SearchCall& call, const CollectionSchema& schema,
                   std::vector<uint32_t> quotas, std::vector<Answer> answers) {
  const QuerySpec& q = call.query;
  const uint32_t shards = std::max<uint32_t>(schema.shards, 1);
  const size_t c = schema.clusters;
  std::vector<Entry> entries;
  std::unordered_map<uint64_t, size_t> seen;
  uint64_t seq = UINT64_MAX;
  for (Answer& a : answers) {
    for (const SearchResult& r : a.parts) seq = std::min(seq, r.seq);
  }
  if (answers.size() > 0 && answers[0].parts.size() > 1) entries = Aggregate(q, answers);
  for (Answer& a : answers) {
    if (a.parts.size() != 1) continue;
    SearchResult& r = a.parts[0];
    if (q.quota && r.quotas.size() == c) {
      // Each cluster's M_k after redistribution, from the replica that searched it.
      for (size_t k = 0; k < c; ++k) {
        if (std::binary_search(a.shards.begin(), a.shards.end(), uint32_t(k % shards)))
          quotas[k] = r.quotas[k];
      }
    }
    for (size_t i = 0; i < r.hits.size(); ++i) {
      Entry e = EntryOf(r, i);
      auto [it, fresh] = seen.emplace(e.hit.id, entries.size());
      if (fresh) {
        entries.push_back(std::move(e));
      } else if (e.hit.score > entries[it->second].hit.score) {
        entries[it->second] = std::move(e);
      }
    }
  }
  auto better = [](const Entry& a, const Entry& b) {
    return a.hit.score != b.hit.score ? a.hit.score > b.hit.score : a.hit.id < b.hit.id;
  };
  std::sort(entries.begin(), entries.end(), better);
  if (q.quota) {
    // Top M_k per cluster (two replicas of a shard may each have answered for it).
    std::vector<uint32_t> taken(c, 0);
    std::erase_if(entries, [&](const Entry& e) {
      if (e.cluster < 0 || size_t(e.cluster) >= c) return true;
      return taken[size_t(e.cluster)]++ >= quotas[size_t(e.cluster)];
    });
  } else if (entries.size() > q.k) {
    entries.resize(q.k);
  }
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
  out.seq = seq == UINT64_MAX ? 0 : seq;
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

void Router::Penalize(const std::string& id) {
  std::lock_guard lock(mu_);
  peers_[id].avoid_until = Clock::now() + options_.penalty;
}

std::optional<Reply> Router::Route(const SearchCall& call, const CollectionSchema& schema,
                                   const Local& local) {
  const QuerySpec& q = call.query;
  if (!q.shards.empty()) return std::nullopt;  // a router's sub-request: answered here
  const uint32_t shards = std::max<uint32_t>(schema.shards, 1);
  if (Status s = engine::ValidateQuery(q, schema.dim, schema.clusters, schema.topics, shards);
      !s.ok()) {
    return Reply{std::move(s), std::monostate{}};
  }
  // The shards the search needs, and with a quota M_k per cluster.
  std::vector<uint32_t> quotas;
  std::vector<bool> needed(shards, true);
  if (q.quota && !q.quota->p.empty()) {
    const std::vector<double> p(q.quota->p.begin(), q.quota->p.end());
    quotas = engine::AllocateQuotas(p, q.quota->a, q.quota->total);
    needed.assign(shards, false);
    for (size_t k = 0; k < quotas.size(); ++k) {
      if (quotas[k] > 0) needed[k % shards] = true;
    }
  }
  std::vector<uint32_t> todo;
  for (uint32_t s = 0; s < shards; ++s) {
    if (needed[s]) todo.push_back(s);
  }
  if (todo.empty()) todo.push_back(0);  // nothing to find: any one shard answers that

  // The replicas: etcd's view, with this node's own state as it is now.
  const std::string& self = node_.node_id();
  const auto view = [&] {
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
    it->applied.erase(call.collection);
    if (!node_.CheckServing(call.collection).ok()) it->blocked.push_back(call.collection);
    for (const cluster::FollowerState& f : node_.Followers()) {
      if (f.collection == call.collection) it->applied[call.collection] = f.applied;
    }
    return members;
  };

  bool self_hosts_all = true;
  for (uint32_t s = 0; s < shards; ++s) self_hosts_all = self_hosts_all && node_.Hosts(s);
  const Clock::time_point deadline = Clock::now() + options_.deadline;
  std::vector<Answer> answers;
  std::set<std::string> failed;  // replicas that failed this request
  Status last = Status::Ok();
  bool first = true;
  while (!todo.empty()) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      return Reply{Status(StatusCode::kDeadlineExceeded,
                          "search of '" + call.collection +
                              "': no replica answered for every shard in time" +
                              (last.ok() ? "" : " (last: " + last.ToString() + ")")),
                   std::monostate{}};
    }
    const std::vector<cluster::MemberInfo> members = view();
    // Rotation: serving, following, within max_lag of the shard's best replica.
    std::vector<uint64_t> best(shards, 0);
    auto serving = [&](const cluster::MemberInfo& m) {
      return std::find(m.blocked.begin(), m.blocked.end(), call.collection) == m.blocked.end() &&
             m.applied.count(call.collection) > 0;
    };
    for (const cluster::MemberInfo& m : members) {
      if (!serving(m)) continue;
      for (uint32_t s = 0; s < shards; ++s) {
        if (m.Hosts(s)) best[s] = std::max(best[s], m.applied.at(call.collection));
      }
    }
    std::map<std::string, std::vector<uint32_t>> plan;
    std::vector<uint32_t> orphans;
    {
      std::lock_guard lock(mu_);
      for (uint32_t s : todo) {
        const cluster::MemberInfo* pick = nullptr;
        std::tuple<int, uint64_t, std::string> pick_key;
        for (const cluster::MemberInfo& m : members) {
          if (!m.Hosts(s) || !serving(m) || failed.count(m.id) > 0) continue;
          if (m.applied.at(call.collection) + options_.max_lag < best[s]) continue;
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
                              " of collection '" + call.collection + "' is in rotation");
      failed.clear();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    // This node hosts every shard and is in rotation: the plain local search.
    if (first && plan.size() == 1 && plan.begin()->first == self && self_hosts_all) {
      return std::nullopt;
    }
    first = false;
    if (answers.empty() && plan.size() > 1) {
      if (const char* op = OneNodeOperator(q)) {
        return Reply{FailedPreconditionError(std::string(op) +
                                             " needs every shard on one node; "
                                             "no node of the cluster hosts all the shards of '" +
                                             call.collection + "' this search needs"),
                     std::monostate{}};
      }
    }
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    // One sub-search per replica, or with Split one per query vector.
    const bool split = plan.size() > 1 && Split(q);
    auto subs_for = [&](const std::vector<uint32_t>& assigned) {
      std::vector<SearchCall> subs;
      if (!split) {
        subs.push_back(call);
        subs.back().query.shards = assigned;
        return subs;
      }
      for (const std::vector<float>& v : q.vectors) {
        SearchCall sub = call;
        sub.query.vectors = {v};
        sub.query.aggregate = Aggregate::kMax;
        sub.query.weights.clear();
        sub.query.shards = assigned;
        subs.push_back(std::move(sub));
      }
      return subs;
    };
    struct Pending {
      std::string id;
      std::vector<uint32_t> shards;
      std::future<std::vector<Reply>> future;
      bool local = false;
    };
    std::vector<Pending> pending;
    const std::map<std::string, const cluster::MemberInfo*> by_id = [&] {
      std::map<std::string, const cluster::MemberInfo*> m;
      for (const cluster::MemberInfo& x : members) m[x.id] = &x;
      return m;
    }();
    const auto budget = std::max(remaining, std::chrono::milliseconds(1));
    for (auto& [id, assigned] : plan) {
      Pending p{id, assigned, {}, id == self};
      {
        std::lock_guard lock(mu_);
        ++peers_[id].outstanding;
      }
      if (!p.local) {
        std::shared_ptr<client::Client> c = ClientFor(*by_id.at(id));
        if (!c) {
          std::promise<std::vector<Reply>> failed_connect;
          failed_connect.set_value(
              {Reply{UnavailableError("cannot connect to node '" + id + "'"), std::monostate{}}});
          p.future = failed_connect.get_future();
        } else if (!split) {
          // On the client's workers: no thread started per request.
          auto one = c->CallAsync(subs_for(assigned)[0], budget);
          p.future = std::async(std::launch::deferred, [one = std::move(one)]() mutable {
            return std::vector<Reply>{one.get()};
          });
        } else {
          std::vector<Call> subs;
          for (SearchCall& sub : subs_for(assigned)) subs.emplace_back(std::move(sub));
          p.future = std::async(std::launch::async, [c, subs = std::move(subs), budget] {
            return c->CallMany(subs, budget);
          });
        }
      }
      pending.push_back(std::move(p));
    }
    for (Pending& p : pending) {
      std::vector<Reply> replies;
      if (p.local) {
        for (const SearchCall& sub : subs_for(p.shards)) replies.push_back(local(sub));
      } else {
        replies = p.future.get();
      }
      {
        std::lock_guard lock(mu_);
        --peers_[p.id].outstanding;
      }
      Answer answer{p.shards, {}};
      Status failure = Status::Ok();
      for (Reply& reply : replies) {
        auto* r = std::get_if<SearchResult>(&reply.body);
        if (reply.status.ok() && r == nullptr) {
          failure = InternalError("node '" + p.id + "' answered a search with another body");
          break;
        }
        if (!reply.status.ok()) {
          if (!Retryable(reply.status.code())) return std::move(reply);
          failure = Status(reply.status.code(),
                           "node '" + p.id + "': " + std::string(reply.status.message()));
          break;
        }
        answer.parts.push_back(std::move(*r));
      }
      if (failure.ok()) {
        for (uint32_t s : p.shards) std::erase(todo, s);
        answers.push_back(std::move(answer));
        continue;
      }
      last = std::move(failure);
      failed.insert(p.id);
      Penalize(p.id);
    }
    // A retry after a partial failure must be split the same way as the answers kept.
    if (!todo.empty() && split != (answers.empty() ? split : answers[0].parts.size() > 1)) {
      answers.clear();
    }
  }
  if (quotas.empty() && q.quota) quotas.assign(schema.clusters, 0);
  return Reply{Status::Ok(), ReplyBody(Merge(call, schema, std::move(quotas), std::move(answers)))};
}

}  // namespace quiver::net
