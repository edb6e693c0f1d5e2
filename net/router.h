// Router: cluster mode's search fan-out (docs/cluster.md, "Membership and routing"). A search of
// a collection whose shards this node does not all host goes to one replica of each shard the
// search needs, concurrently, and the answers are merged into the one a single node holding
// everything gives:
//   - top k by score over every shard's top k (plain, multi-vector, MVKE, filters, exclude,
//     freshness pool); an item answered by two replicas counts once;
//   - a quota: M_k = M p_k^a / sum p^a computed here over every cluster, each shard searched for
//     its clusters' M_k (shards whose clusters all have M_k = 0 are not contacted), top M_k kept
//     per cluster. A cluster that runs short hands its shortfall to the clusters of its own
//     shard (a single node spreads it over all clusters).
// The freshness boost and diversity re-ranking run on the router: the shards give the candidates
// one node would have, the router reads their records and finishes as RunQuery does. A quota
// with p "auto" first gathers each cluster's similarity to the query from its shard (IntentCall).
// Channels run engine::RunChannels over the cluster: users and u2u lists from this node (they
// are on every node), i2i lists and items from their shards' replicas, u2i as a routed search.
//
// A replica is in rotation while its etcd lease lives (cluster::Membership), it serves the
// collection, and it has applied the collection's log to within max_lag of its shard's most
// advanced replica. Among those the router takes this node, then the one with the fewest
// requests outstanding from here. A replica that fails (transport error, or an answer saying it
// cannot serve) is left out for `penalty` and its shards are asked of another replica, until
// the request's deadline.
//
// Thread-safety: Route may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/model.h"
#include "client/client.h"
#include "cluster/membership.h"
#include "cluster/node.h"
#include "net/schema/calls.h"

namespace quiver::net {

struct RouterOptions {
  uint64_t max_lag = 1024;                    // log messages behind the shard's best replica
  std::chrono::milliseconds deadline{10000};  // a routed search, retries included
  std::chrono::milliseconds penalty{2000};    // a failed replica is avoided this long
  std::string api_key;                        // the key peers take
};

class Router {
 public:
  // Answers a call on this node: a search of its own shards (SearchCall::query.shards set), or
  // a read of items it found.
  using Local = std::function<Reply(const Call&)>;

  Router(cluster::Membership& members, cluster::Node& node, RouterOptions options)
      : members_(members), node_(node), options_(std::move(options)) {}

  // nullopt: the search is answered here (this node hosts every shard it needs and serves the
  // collection). Otherwise the merged answer of the replicas it went to.
  std::optional<Reply> Route(const SearchCall& call, const CollectionSchema& schema,
                             const Local& local);
  // The cluster's membership and collections (creates and drops go through it).
  cluster::Membership& members() { return members_; }
  uint64_t max_lag() const { return options_.max_lag; }
  // Prometheus lines: searches routed, sub-requests sent, replica failures (each retried
  // elsewhere), members in the view, whether etcd answered last.
  std::string RenderMetrics() const;

  // One replica's answers for some shards: one reply per call it was sent, and the search
  // results among them.
  struct Answer {
    std::string node;
    std::vector<uint32_t> shards;
    std::vector<Reply> replies;
    std::vector<SearchResult> parts;
  };

 private:
  struct Peer {
    std::string address;
    std::shared_ptr<client::Client> client;
    uint64_t outstanding = 0;
    std::chrono::steady_clock::time_point avoid_until{};
  };
  using Clock = std::chrono::steady_clock;
  // The calls for a replica given the shards it answers for and whether several replicas
  // answer.
  using Plan =
      std::function<Result<std::vector<Call>>(const std::vector<uint32_t>& shards, bool several)>;
  // Etcd's view of the members, with this node's own state as it is now.
  std::vector<cluster::MemberInfo> View(const std::string& collection, uint32_t shards);
  // Sends each shard of `unanswered` to one replica in rotation, concurrently, retrying a shard on
  // another replica when one fails, until `deadline`. nullopt when every shard has answered
  // (*answers); else the reply to give (an error).
  std::optional<Reply> Fanout(const std::string& collection, uint32_t shards,
                              std::vector<uint32_t> unanswered, Clock::time_point deadline,
                              const Plan& calls_for, const Local& local,
                              std::vector<Answer>* answers, std::vector<cluster::MemberInfo>* known,
                              bool* several);
  std::shared_ptr<client::Client> ClientFor(const cluster::MemberInfo& m);
  // A search with channels across shards: engine::RunChannels over the replicas' data.
  Reply RouteChannels(const SearchCall& call, const CollectionSchema& schema, const Local& local,
                      Clock::time_point deadline);
  // The calls to a replica, written now on this thread; Wait reads the answers (kUnavailable
  // replies if it cannot be reached).
  struct InFlight {
    std::optional<client::Client::Batch> batch;
    std::vector<Reply> failed;
    std::vector<Reply> Wait() { return batch ? batch->Wait() : std::move(failed); }
  };
  InFlight Send(const cluster::MemberInfo& m, std::vector<Call> calls,
                std::chrono::milliseconds deadline);
  void Penalize(const std::string& id);

  cluster::Membership& members_;
  cluster::Node& node_;
  const RouterOptions options_;
  std::mutex mu_;
  std::map<std::string, Peer> peers_;  // GUARDED_BY(mu_), by node id
  std::atomic<uint64_t> routed_{0}, subrequests_{0}, failures_{0};
};

}  // namespace quiver::net
