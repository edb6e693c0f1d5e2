#include "plugins/builtin.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <iterator>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "base/parallelism.h"
#include "index/index_factory.h"

namespace quiver::plugins {
namespace {

// fn(i) for i in [0, n) on the machine's cores; the first error stops the others.
Status ParallelFor(size_t n, const std::function<Status(size_t)>& fn) {
  const size_t threads = std::max<size_t>(1, std::min<size_t>(ParallelismBudget(), n / 16 + 1));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  Status first;
  std::mutex mu;
  auto work = [&] {
    for (size_t i; !failed && (i = next++) < n;) {
      Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard lock(mu);
        if (!failed.exchange(true)) first = std::move(s);
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return failed ? first : Status::Ok();
}

Result<size_t> ListLength(const Context& ctx) {
  const double k = ctx.Number("k", 50);
  if (!(k >= 1 && k <= 10000) || k != std::floor(k)) {
    return InvalidArgumentError("k must be an integer in [1, 10000]");
  }
  return size_t(k);
}

Filter CategoryIs(int64_t category) {
  Filter f;
  f.op = Filter::Op::kEq;
  f.field = Filter::Field::kCategory;
  f.values = {category};
  return f;
}

bool BestFirst(const Hit& a, const Hit& b) {
  return a.score != b.score ? a.score > b.score : a.id < b.id;
}

// i2i_knn: for every item, its k most similar items through the collection's index (itself
// excluded), optionally only items of its own category.
class I2iKnn final : public Plugin {
 public:
  std::vector<std::string> Options() const override { return {"kind", "k", "same_category"}; }
  std::vector<std::string> Kinds(const Context& ctx) const override {
    return {ctx.String("kind", "i2i")};
  }

  Status Build(const Context& ctx, Writer& out) override {
    QV_ASSIGN_OR_RETURN(const size_t k, ListLength(ctx));
    std::vector<ItemRecord> items;
    QV_RETURN_IF_ERROR(ctx.ForEachItem([&](const ItemRecord& item) {
      items.push_back(item);
      return Status::Ok();
    }));
    const std::string kind = Kinds(ctx)[0];
    return ParallelFor(items.size(), [&](size_t i) -> Status {
      QV_ASSIGN_OR_RETURN(std::vector<Hit> list, Neighbors(ctx, items[i], k));
      return out.Put(kind, items[i].id, std::move(list));
    });
  }

  // Lists recomputed: the upserted items'; those holding a changed or deleted item. Lists
  // gaining an upserted item: found among that item's own neighbours (symmetric similarity),
  // searched exhaustively up to 10,000 items (exact), else 4k deep; the item is inserted in
  // place when it beats the list's last entry.
  Status Update(const Context& ctx, const Changes& changes, Writer& out) override {
    QV_ASSIGN_OR_RETURN(const size_t k, ListLength(ctx));
    const std::string kind = Kinds(ctx)[0];
    const bool same_category = ctx.Bool("same_category", false);
    std::unordered_set<uint64_t> changed(changes.items_upserted.begin(),
                                         changes.items_upserted.end());
    changed.insert(changes.items_deleted.begin(), changes.items_deleted.end());
    std::set<uint64_t> redo(changes.items_upserted.begin(), changes.items_upserted.end());
    std::unordered_map<uint64_t, std::vector<Hit>> lists;  // the others' current lists
    QV_RETURN_IF_ERROR(ctx.ForEachList(kind, [&](uint64_t key, const std::vector<Hit>& list) {
      if (changed.count(key)) return Status::Ok();
      if (std::any_of(list.begin(), list.end(),
                      [&](const Hit& h) { return changed.count(h.id) > 0; })) {
        redo.insert(key);
      } else {
        lists.emplace(key, list);
      }
      return Status::Ok();
    }));
    for (uint64_t id : changes.items_deleted) {
      if (!redo.count(id)) QV_RETURN_IF_ERROR(out.Remove(kind, id));  // else settled below
    }
    const size_t total = lists.size() + redo.size();
    const size_t depth = total <= 10000 ? total + 1 : 4 * k;
    std::unordered_set<uint64_t> grown;
    for (uint64_t id : changes.items_upserted) {
      QV_ASSIGN_OR_RETURN(auto item, ctx.GetItem(id));
      if (!item) continue;
      const Filter f = CategoryIs(item->category.value_or(0));
      const Filter* filter = same_category && item->category ? &f : nullptr;
      QV_ASSIGN_OR_RETURN(std::vector<Hit> near, ctx.SearchItems(item->vector, depth, filter));
      for (const Hit& h : near) {
        auto it = lists.find(h.id);
        if (it == lists.end() || h.id == id) continue;
        std::vector<Hit>& list = it->second;
        if (list.size() >= k && !BestFirst(Hit{id, h.score}, list.back())) continue;
        list.push_back({id, h.score});
        std::sort(list.begin(), list.end(), BestFirst);
        if (list.size() > k) list.resize(k);
        grown.insert(h.id);
      }
    }
    for (uint64_t key : grown) QV_RETURN_IF_ERROR(out.Put(kind, key, lists[key]));
    std::vector<uint64_t> stale(redo.begin(), redo.end());
    return ParallelFor(stale.size(), [&](size_t i) -> Status {
      QV_ASSIGN_OR_RETURN(auto item, ctx.GetItem(stale[i]));
      if (!item) return out.Remove(kind, stale[i]);
      QV_ASSIGN_OR_RETURN(std::vector<Hit> list, Neighbors(ctx, *item, k));
      return out.Put(kind, stale[i], std::move(list));
    });
  }

 private:
  static Result<std::vector<Hit>> Neighbors(const Context& ctx, const ItemRecord& item, size_t k) {
    const Filter f = CategoryIs(item.category.value_or(0));
    const Filter* filter = ctx.Bool("same_category", false) && item.category ? &f : nullptr;
    QV_ASSIGN_OR_RETURN(std::vector<Hit> near, ctx.SearchItems(item.vector, k + 1, filter));
    std::erase_if(near, [&](const Hit& h) { return h.id == item.id; });
    std::sort(near.begin(), near.end(), BestFirst);
    if (near.size() > k) near.resize(k);
    return near;
  }
};

// u2u_knn: for every user with a vector, the k users with the most similar vectors (the
// collection's metric; exact up to 10,000 users, HNSW beyond).
class U2uKnn final : public Plugin {
 public:
  std::vector<std::string> Options() const override { return {"kind", "k"}; }
  std::vector<std::string> Kinds(const Context& ctx) const override {
    return {ctx.String("kind", "u2u")};
  }

  Status Build(const Context& ctx, Writer& out) override {
    QV_ASSIGN_OR_RETURN(const size_t k, ListLength(ctx));
    std::vector<uint64_t> ids;
    std::vector<float> vectors;
    const size_t dim = ctx.schema().dim;
    QV_RETURN_IF_ERROR(ctx.ForEachUser([&](const UserRecord& u) {
      if (u.vector.size() != dim) return Status::Ok();
      ids.push_back(u.id);
      vectors.insert(vectors.end(), u.vector.begin(), u.vector.end());
      return Status::Ok();
    }));
    if (ids.empty()) return Status::Ok();
    const Metric metric = ctx.schema().metric;
    // Exact below 10,000 users, else HNSW with a search list wide enough for k.
    IndexSpec spec;
    spec.type = ids.size() <= 10000 ? IndexSpec::Type::kFlat : IndexSpec::Type::kHnsw;
    spec.hnsw_ef_search = uint32_t(std::max<size_t>(2 * k + 2, 64));
    QV_ASSIGN_OR_RETURN(auto idx, index::CreateIndex(spec, dim, metric));
    QV_RETURN_IF_ERROR(idx->Add(ids, vectors));
    const std::string kind = Kinds(ctx)[0];
    return ParallelFor(ids.size(), [&](size_t i) -> Status {
      std::vector<index::Neighbor> near;
      index::SearchParams p;
      p.k = k + 1;
      p.ef = std::max<size_t>(2 * (k + 1), 64);
      QV_RETURN_IF_ERROR(idx->Search({&vectors[i * dim], dim}, p, &near));
      std::vector<Hit> list;
      for (const index::Neighbor& n : near) {
        if (n.id != ids[i] && list.size() < k)
          list.push_back({n.id, index::DistanceToScore(metric, n.distance)});
      }
      return out.Put(kind, ids[i], std::move(list));
    });
  }
};

// itemcf: item-item co-occurrence in user histories. A user with history H adds
// 1 / ln(2 + |H|) to c_ij for every pair of distinct items in H (active users count less);
// sim(i, j) = c_ij / (n_i^(1 - alpha) * n_j^alpha), n the number of histories holding the item:
// alpha 0.5 is cosine, larger alpha damps popular neighbours j further.
class ItemCf final : public Plugin {
 public:
  std::vector<std::string> Options() const override { return {"kind", "k", "alpha"}; }
  std::vector<std::string> Kinds(const Context& ctx) const override {
    return {ctx.String("kind", "i2i_cf")};
  }

  Status Build(const Context& ctx, Writer& out) override {
    QV_ASSIGN_OR_RETURN(const size_t k, ListLength(ctx));
    const double alpha = ctx.Number("alpha", 0.6);
    if (!(alpha >= 0 && alpha <= 1)) return InvalidArgumentError("alpha must be in [0, 1]");
    std::unordered_map<uint64_t, uint32_t> index_of;
    std::vector<uint64_t> ids;
    std::vector<std::vector<uint32_t>> histories;
    QV_RETURN_IF_ERROR(ctx.ForEachUser([&](const UserRecord& u) {
      std::vector<uint32_t> h;
      for (const Interaction& e : u.history) {
        auto [it, added] = index_of.try_emplace(e.item, uint32_t(ids.size()));
        if (added) ids.push_back(e.item);
        h.push_back(it->second);
      }
      std::sort(h.begin(), h.end());
      h.erase(std::unique(h.begin(), h.end()), h.end());
      if (h.size() > 1) histories.push_back(std::move(h));
      return Status::Ok();
    }));
    std::vector<double> n(ids.size(), 0.0);
    std::vector<std::unordered_map<uint32_t, double>> co(ids.size());
    for (const auto& h : histories) {
      const double w = 1.0 / std::log(2.0 + double(h.size()));
      for (uint32_t a : h) {
        n[a] += 1;
        for (uint32_t b : h) {
          if (a != b) co[a][b] += w;
        }
      }
    }
    const std::string kind = Kinds(ctx)[0];
    return ParallelFor(ids.size(), [&](size_t a) -> Status {
      if (co[a].empty()) return Status::Ok();
      std::vector<Hit> list;
      list.reserve(co[a].size());
      for (const auto& [b, c] : co[a]) {
        list.push_back({ids[b], float(c / (std::pow(n[a], 1 - alpha) * std::pow(n[b], alpha)))});
      }
      const size_t keep = std::min(k, list.size());
      std::partial_sort(list.begin(), list.begin() + keep, list.end(), BestFirst);
      list.resize(keep);
      return out.Put(kind, ids[a], std::move(list));
    });
  }
};

// intent: a per-user intent distribution over the collection's clusters for quotas with p
// "learned" (docs/plugins.md, "intent"). A mixture of recency experts: with the user's events
// c_1..c_n (item clusters, oldest first), expert j's share of cluster k is
//   s_j(k) = sum_{i: c_i = k} 2^(-(n - i) / h_j) / sum_i 2^(-(n - i) / h_j)
// for half-lives h_j of 2, 8 and 32 events and the whole history (h = infinity), and the prior
// g(k) is cluster k's share of every user's events (add-one smoothed). Then
//   p_u(k) = sum_j pi_j s_j(k) + pi_g g(k),
// with the weights pi fitted by EM to the likelihood of each user's next event given the events
// before it (the last `samples` events of every user). Lists: kind (default "intent"), key the
// user, entries (cluster, p_u(k)) for p_u(k) > 0, best first; kind + "_model": key 0 the weights
// (entry j = expert j, the prior last), key 1 the prior g (entry k = cluster k).
class Intent final : public Plugin {
 public:
  std::vector<std::string> Options() const override { return {"kind", "samples"}; }
  static constexpr double kHalfLives[] = {2, 8, 32, 0};          // in events; 0: the whole history
  static constexpr size_t kExperts = std::size(kHalfLives) + 1;  // + the prior

  std::vector<std::string> Kinds(const Context& ctx) const override {
    const std::string kind = ctx.String("kind", kLearnedIntentKind);
    return {kind, kind + "_model"};
  }

  Status Build(const Context& ctx, Writer& out) override {
    QV_ASSIGN_OR_RETURN(const Setup setup, Prepare(ctx));
    const size_t clusters = setup.clusters;
    // Sample: each expert's probability of the next event's cluster, given the events before.
    QV_ASSIGN_OR_RETURN(const size_t per_user, Samples(ctx));
    std::vector<std::array<double, kExperts>> samples;
    std::vector<double> prior(clusters, 1.0);
    // Every user with an event here, once: the fit reads them, then each gets its list.
    std::vector<std::pair<uint64_t, std::vector<uint32_t>>> sequences;
    QV_RETURN_IF_ERROR(ctx.ForEachUser([&](const UserRecord& u) {
      std::vector<uint32_t> seq = Sequence(u, setup);
      for (uint32_t c : seq) prior[c] += 1;
      if (!seq.empty()) sequences.emplace_back(u.id, std::move(seq));
      return Status::Ok();
    }));
    Normalise(prior);
    for (const auto& [user, seq] : sequences) {
      Decayed shares(clusters);
      const size_t first = seq.size() > per_user ? seq.size() - per_user : 1;
      for (size_t t = 0; t < seq.size(); ++t) {
        if (t >= first && samples.size() < kMaxSamples) {
          std::array<double, kExperts> x{};
          for (size_t j = 0; j + 1 < kExperts; ++j) x[j] = shares.Share(j, seq[t]);
          x[kExperts - 1] = prior[seq[t]];
          samples.push_back(x);
        }
        shares.Add(seq[t]);
      }
    }
    std::array<double, kExperts> pi{};
    pi.fill(1.0 / kExperts);
    // EM on the mixture weights: each step cannot lower the likelihood.
    for (int iter = 0; iter < 500 && !samples.empty(); ++iter) {
      std::array<double, kExperts> next{};
      for (const auto& x : samples) {
        double total = 0;
        for (size_t j = 0; j < kExperts; ++j) total += pi[j] * x[j];
        for (size_t j = 0; j < kExperts; ++j) next[j] += pi[j] * x[j] / total;
      }
      double change = 0;
      for (size_t j = 0; j < kExperts; ++j) {
        next[j] /= double(samples.size());
        change = std::max(change, std::abs(next[j] - pi[j]));
      }
      pi = next;
      if (change < 1e-7) break;
    }
    const std::vector<std::string> kinds = Kinds(ctx);
    std::vector<Hit> weights, g;
    for (size_t j = 0; j < kExperts; ++j) weights.push_back({uint64_t(j), float(pi[j])});
    for (size_t k = 0; k < clusters; ++k) g.push_back({uint64_t(k), float(prior[k])});
    QV_RETURN_IF_ERROR(out.Put(kinds[1], 0, std::move(weights)));
    QV_RETURN_IF_ERROR(out.Put(kinds[1], 1, std::move(g)));
    const Model model{std::vector<double>(pi.begin(), pi.end()), prior};
    for (const auto& [user, seq] : sequences) {
      QV_RETURN_IF_ERROR(Write(kinds[0], user, seq, model, out));
    }
    return Status::Ok();
  }

  // The users whose histories changed get their p again under the stored weights; a run with no
  // stored model (or another number of clusters) fits it anew.
  Status Update(const Context& ctx, const Changes& changes, Writer& out) override {
    QV_ASSIGN_OR_RETURN(const Setup setup, Prepare(ctx));
    const std::vector<std::string> kinds = Kinds(ctx);
    QV_ASSIGN_OR_RETURN(auto weights, ctx.GetList(kinds[1], 0));
    QV_ASSIGN_OR_RETURN(auto g, ctx.GetList(kinds[1], 1));
    if (!weights || !g || weights->size() != kExperts || g->size() != setup.clusters) {
      return Build(ctx, out);
    }
    Model model{std::vector<double>(kExperts), std::vector<double>(setup.clusters)};
    for (const Hit& h : *weights) model.pi.at(h.id) = h.score;
    for (const Hit& h : *g) model.prior.at(h.id) = h.score;
    for (uint64_t id : changes.users_changed) {
      QV_ASSIGN_OR_RETURN(std::optional<UserRecord> u, ctx.GetUser(id));
      if (!u) {
        QV_RETURN_IF_ERROR(out.Remove(kinds[0], id));
        continue;
      }
      QV_RETURN_IF_ERROR(Write(kinds[0], id, Sequence(*u, setup), model, out));
    }
    return Status::Ok();
  }

 private:
  static constexpr size_t kMaxSamples = 1'000'000;

  struct Setup {
    size_t clusters = 0;
    std::unordered_map<uint64_t, uint32_t> cluster_of;  // item -> cluster
  };
  struct Model {
    std::vector<double> pi;     // kExperts weights
    std::vector<double> prior;  // g, per cluster
  };

  // Each expert's decayed counts per cluster. Event i weighs 2^(i / h) (growing instead of the
  // older ones shrinking: the same shares), rescaled before it overflows.
  class Decayed {
   public:
    explicit Decayed(size_t clusters)
        : counts_(kExperts - 1, std::vector<double>(clusters, 0.0)),
          totals_(kExperts - 1, 0.0),
          weights_(kExperts - 1, 1.0) {}
    void Add(uint32_t cluster) {
      for (size_t j = 0; j + 1 < kExperts; ++j) {
        counts_[j][cluster] += weights_[j];
        totals_[j] += weights_[j];
        if (kHalfLives[j] > 0) weights_[j] *= std::exp2(1.0 / kHalfLives[j]);
        if (weights_[j] > 1e100) {
          for (double& c : counts_[j]) c /= weights_[j];
          totals_[j] /= weights_[j];
          weights_[j] = 1.0;
        }
      }
    }
    double Share(size_t expert, uint32_t cluster) const {
      return totals_[expert] > 0 ? counts_[expert][cluster] / totals_[expert] : 0.0;
    }

   private:
    std::vector<std::vector<double>> counts_;
    std::vector<double> totals_, weights_;
  };

  static void Normalise(std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    for (double& x : v) x /= sum;
  }

  static Result<Setup> Prepare(const Context& ctx) {
    Setup setup;
    setup.clusters = ctx.schema().clusters;
    if (setup.clusters == 0) {
      return FailedPreconditionError("the intent plugin needs a collection with clusters");
    }
    QV_RETURN_IF_ERROR(ctx.ForEachItem([&](const ItemRecord& item) {
      if (item.cluster < setup.clusters) setup.cluster_of[item.id] = item.cluster;
      return Status::Ok();
    }));
    return setup;
  }

  static Result<size_t> Samples(const Context& ctx) {
    const double n = ctx.Number("samples", 20);
    if (!(n >= 1 && n <= 10000) || n != std::floor(n)) {
      return InvalidArgumentError("samples must be an integer in [1, 10000]");
    }
    return size_t(n);
  }

  // The clusters of the user's events on items here, oldest first.
  static std::vector<uint32_t> Sequence(const UserRecord& u, const Setup& setup) {
    std::vector<std::pair<int64_t, uint32_t>> timed;
    // The record is newest first: read backwards, then order by time (ties keep that order).
    for (auto e = u.history.rbegin(); e != u.history.rend(); ++e) {
      auto it = setup.cluster_of.find(e->item);
      if (it != setup.cluster_of.end()) timed.emplace_back(e->timestamp, it->second);
    }
    std::stable_sort(timed.begin(), timed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<uint32_t> seq;
    seq.reserve(timed.size());
    for (const auto& [t, c] : timed) seq.push_back(c);
    return seq;
  }

  static Status Write(const std::string& kind, uint64_t user, const std::vector<uint32_t>& seq,
                      const Model& model, Writer& out) {
    if (seq.empty()) return out.Remove(kind, user);
    const size_t clusters = model.prior.size();
    Decayed shares(clusters);
    for (uint32_t c : seq) shares.Add(c);
    std::vector<Hit> list;
    for (size_t k = 0; k < clusters; ++k) {
      double p = model.pi[kExperts - 1] * model.prior[k];
      for (size_t j = 0; j + 1 < kExperts; ++j) p += model.pi[j] * shares.Share(j, uint32_t(k));
      if (p > 0) list.push_back({uint64_t(k), float(p)});
    }
    std::sort(list.begin(), list.end(), BestFirst);
    return out.Put(kind, user, std::move(list));
  }
};

}  // namespace

std::unique_ptr<Plugin> CreateBuiltin(std::string_view name) {
  if (name == "i2i_knn") return std::make_unique<I2iKnn>();
  if (name == "u2u_knn") return std::make_unique<U2uKnn>();
  if (name == "itemcf") return std::make_unique<ItemCf>();
  if (name == "intent") return std::make_unique<Intent>();
  return nullptr;
}

}  // namespace quiver::plugins
