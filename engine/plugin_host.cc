#include "engine/plugin_host.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <unordered_set>
#include <variant>

#include "plugins/registry.h"

namespace quiver::engine {
namespace {

using Value = std::variant<double, bool, std::string>;
using Config = std::map<std::string, Value, std::less<>>;

Result<Config> ParseConfig(const std::string& json) {
  Config out;
  if (json.find_first_not_of(" \t\r\n") == std::string::npos) return out;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json).get(root)) return InvalidArgumentError("plugin config is not valid JSON");
  simdjson::dom::object obj;
  if (root.get_object().get(obj))
    return InvalidArgumentError("plugin config must be a JSON object");
  for (auto field : obj) {
    const std::string key(field.key);
    switch (field.value.type()) {
      case simdjson::dom::element_type::INT64:
        out[key] = double(int64_t(field.value));
        break;
      case simdjson::dom::element_type::UINT64:
        out[key] = double(uint64_t(field.value));
        break;
      case simdjson::dom::element_type::DOUBLE:
        out[key] = double(field.value);
        break;
      case simdjson::dom::element_type::BOOL:
        out[key] = bool(field.value);
        break;
      case simdjson::dom::element_type::STRING:
        out[key] = std::string(std::string_view(field.value));
        break;
      default:
        return InvalidArgumentError("plugin config '" + key +
                                    "' must be a number, boolean or string");
    }
  }
  return out;
}

// A config key the plugin does not read is a mistake (a misspelt option would silently keep
// its default): refused, naming the plugin's options.
Status CheckOptions(const std::string& name, const plugins::Plugin& plugin, const Config& config) {
  const std::vector<std::string> options = plugin.Options();
  for (const auto& [key, value] : config) {
    if (std::find(options.begin(), options.end(), key) != options.end()) continue;
    std::string known;
    for (const std::string& o : options) known += (known.empty() ? "" : ", ") + o;
    return InvalidArgumentError("plugin '" + name + "' has no option '" + key + "' (" +
                                (known.empty() ? "it takes none" : "its options: " + known) + ")");
  }
  return Status::Ok();
}

// The config in one canonical form (keys sorted), to tell whether two runs had the same one.
std::string Canonical(const Config& c) {
  std::string out = "{";
  for (const auto& [k, v] : c) {
    if (out.size() > 1) out += ",";
    out += "\"" + k + "\":";
    if (const double* d = std::get_if<double>(&v)) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", *d);
      out += buf;
    } else if (const bool* b = std::get_if<bool>(&v)) {
      out += *b ? "true" : "false";
    } else {
      out += "\"";
      for (char ch : std::get<std::string>(v))
        out += ch == '"' || ch == '\\' ? std::string("\\") + ch : std::string(1, ch);
      out += "\"";
    }
  }
  return out + "}";
}

class HostContext final : public plugins::Context {
 public:
  HostContext(const storage::Store& store, uint32_t id, const CollectionSchema& schema,
              const Partitions& parts, Config config, const ItemSearch& search)
      : store_(store),
        id_(id),
        schema_(schema),
        parts_(parts),
        config_(std::move(config)),
        search_(search) {}

  const CollectionSchema& schema() const override { return schema_; }
  double Number(std::string_view key, double fallback) const override {
    return Get<double>(key, fallback, "a number");
  }
  bool Bool(std::string_view key, bool fallback) const override {
    return Get<bool>(key, fallback, "a boolean");
  }
  std::string String(std::string_view key, std::string_view fallback) const override {
    return Get<std::string>(key, std::string(fallback), "a string");
  }
  Status ForEachItem(const std::function<Status(const ItemRecord&)>& fn) const override {
    return store_.ScanItems(id_, [&](ItemRecord&& item) { return fn(item); });
  }
  Status ForEachUser(const std::function<Status(const UserRecord&)>& fn) const override {
    return store_.ScanUsers(id_, [&](UserRecord&& user) { return fn(user); });
  }
  Result<std::optional<ItemRecord>> GetItem(uint64_t id) const override {
    return store_.GetItem(id_, id);
  }
  Result<std::optional<UserRecord>> GetUser(uint64_t id) const override {
    return store_.GetUser(id_, id);
  }
  Result<std::vector<Hit>> SearchItems(std::span<const float> vector, size_t k,
                                       const Filter* filter) const override {
    if (vector.size() != schema_.dim) {
      return InvalidArgumentError("plugin search vector has " + std::to_string(vector.size()) +
                                  " values; dim is " + std::to_string(schema_.dim));
    }
    if (k == 0) return std::vector<Hit>();
    if (search_) return search_(vector, k, filter);
    index::PredicateSelector selector([&](uint64_t id) { return parts_.Allows(*filter, id); });
    index::SearchParams p;
    p.k = std::min<size_t>(k, std::max<size_t>(parts_.size(), 1));
    p.ef = std::max<size_t>(p.k, schema_.index.hnsw_ef_search);
    if (filter) p.filter = &selector;
    std::vector<index::Neighbor> near;
    QV_RETURN_IF_ERROR(parts_.global().Search(vector, p, &near));
    std::vector<Hit> out;
    out.reserve(near.size());
    for (const auto& n : near)
      out.push_back({n.id, index::DistanceToScore(schema_.metric, n.distance)});
    return out;
  }
  Result<std::optional<std::vector<Hit>>> GetList(std::string_view kind,
                                                  uint64_t key) const override {
    return store_.GetList(id_, kind, key);
  }
  Status ForEachList(
      std::string_view kind,
      const std::function<Status(uint64_t, const std::vector<Hit>&)>& fn) const override {
    return store_.ScanLists(id_, kind,
                            [&](uint64_t key, std::vector<Hit>&& list) { return fn(key, list); });
  }

  // The first config value of the wrong type a plugin asked for.
  Status type_error() const {
    std::lock_guard lock(mu_);
    return type_error_;
  }

 private:
  template <typename T>
  T Get(std::string_view key, T fallback, const char* what) const {
    auto it = config_.find(key);
    if (it == config_.end()) return fallback;
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    std::lock_guard lock(mu_);
    if (type_error_.ok())
      type_error_ =
          InvalidArgumentError("plugin config '" + std::string(key) + "' must be " + what);
    return fallback;
  }

  const storage::Store& store_;
  const uint32_t id_;
  const CollectionSchema& schema_;
  const Partitions& parts_;
  const Config config_;
  const ItemSearch& search_;
  mutable std::mutex mu_;
  mutable Status type_error_;  // GUARDED_BY(mu_)
};

class HostWriter final : public plugins::Writer {
 public:
  HostWriter(const storage::Store& store, uint32_t id, const std::vector<std::string>& kinds,
             bool incremental, storage::WriteBatch& batch)
      : store_(store),
        id_(id),
        kinds_(kinds.begin(), kinds.end()),
        incremental_(incremental),
        batch_(batch) {}

  Status Put(std::string_view kind, uint64_t key, std::vector<Hit> list) override {
    QV_RETURN_IF_ERROR(CheckKind(kind));
    if (list.size() > 10000)
      return InvalidArgumentError("a neighbor list holds at most 10,000 entries");
    for (const Hit& h : list) {
      if (!std::isfinite(h.score))
        return InvalidArgumentError("neighbor list scores must be finite");
    }
    std::stable_sort(list.begin(), list.end(),
                     [](const Hit& a, const Hit& b) { return a.score > b.score; });
    const bool existed = incremental_ && Exists(kind, key);
    std::lock_guard lock(mu_);
    batch_.PutList(id_, kind, key, list);
    auto& keys = written_[std::string(kind)];
    if (keys.insert(key).second && !existed) ++added_[std::string(kind)];
    ++puts_;
    return Status::Ok();
  }
  Status Remove(std::string_view kind, uint64_t key) override {
    QV_RETURN_IF_ERROR(CheckKind(kind));
    const bool existed = incremental_ && Exists(kind, key);
    std::lock_guard lock(mu_);
    batch_.DeleteList(id_, kind, key);
    if (existed) ++dropped_[std::string(kind)];
    ++removes_;
    return Status::Ok();
  }

  // Lists of `kind` after the run, given how many there were before it (incremental runs).
  uint64_t KeysAfter(const std::string& kind, uint64_t before) const {
    if (!incremental_) {
      auto it = written_.find(kind);
      return it == written_.end() ? 0 : it->second.size();
    }
    auto count = [](const std::map<std::string, uint64_t>& m, const std::string& k) {
      auto it = m.find(k);
      return it == m.end() ? uint64_t{0} : it->second;
    };
    const uint64_t after = before + count(added_, kind);
    return after - std::min(after, count(dropped_, kind));
  }
  uint64_t puts() const { return puts_; }
  uint64_t removes() const { return removes_; }

 private:
  Status CheckKind(std::string_view kind) const {
    if (!kinds_.count(std::string(kind))) {
      return InvalidArgumentError("plugin wrote list kind '" + std::string(kind) +
                                  "' it did not declare");
    }
    return Status::Ok();
  }
  bool Exists(std::string_view kind, uint64_t key) const {
    auto r = store_.GetList(id_, kind, key);
    return r.ok() && r->has_value();
  }

  const storage::Store& store_;
  const uint32_t id_;
  const std::set<std::string> kinds_;
  const bool incremental_;
  std::mutex mu_;
  storage::WriteBatch& batch_;                                   // GUARDED_BY(mu_)
  std::map<std::string, std::unordered_set<uint64_t>> written_;  // GUARDED_BY(mu_)
  std::map<std::string, uint64_t> added_, dropped_;              // GUARDED_BY(mu_)
  uint64_t puts_ = 0, removes_ = 0;                              // GUARDED_BY(mu_)
};

}  // namespace

Status CheckPluginConfig(const std::string& plugin, const std::string& config_json) {
  QV_ASSIGN_OR_RETURN(std::unique_ptr<plugins::Plugin> p,
                      plugins::Registry::Global().Create(plugin));
  QV_ASSIGN_OR_RETURN(Config config, ParseConfig(config_json));
  return CheckOptions(plugin, *p, config);
}

Result<PluginRun> RunPluginOn(const storage::Store& store, uint32_t collection_id,
                              const CollectionSchema& schema, const Partitions& parts,
                              const std::string& plugin, const std::string& config_json,
                              bool incremental,
                              const std::function<Status(storage::WriteBatch&)>& commit,
                              const ItemSearch& search) {
  QV_ASSIGN_OR_RETURN(std::unique_ptr<plugins::Plugin> p,
                      plugins::Registry::Global().Create(plugin));
  QV_ASSIGN_OR_RETURN(Config config, ParseConfig(config_json));
  QV_RETURN_IF_ERROR(CheckOptions(plugin, *p, config));
  const std::string canonical = Canonical(config);
  HostContext ctx(store, collection_id, schema, parts, std::move(config), search);
  PluginRun run;
  run.kinds = p->Kinds(ctx);
  QV_RETURN_IF_ERROR(ctx.type_error());
  if (run.kinds.empty())
    return InvalidArgumentError("plugin '" + plugin + "' declares no list kind");
  for (const std::string& kind : run.kinds) {
    if (!storage::ValidListKind(kind)) {
      return InvalidArgumentError("list kind '" + kind +
                                  "' is not 1 to 64 characters of [a-z0-9_]");
    }
  }
  QV_ASSIGN_OR_RETURN(const uint64_t last_op, store.LastOp(collection_id));
  // Incremental when every kind was last built by this plugin with this config and the op log
  // still holds every op since.
  std::map<std::string, uint64_t> keys_before;
  plugins::Changes changes;
  if (incremental) {
    QV_ASSIGN_OR_RETURN(std::vector<storage::ListInfo> infos, store.ListInfos(collection_id));
    uint64_t since = UINT64_MAX;
    bool known = true;
    for (const std::string& kind : run.kinds) {
      auto it =
          std::find_if(infos.begin(), infos.end(), [&](const auto& i) { return i.kind == kind; });
      if (it == infos.end() || it->plugin != plugin || it->config != canonical) {
        known = false;
        break;
      }
      since = std::min(since, it->op_seq);
      keys_before[kind] = it->keys;
    }
    if (known && since < last_op) {
      QV_ASSIGN_OR_RETURN(std::optional<uint64_t> first, store.FirstOpAfter(collection_id, since));
      known = first == since + 1;
    }
    if (known) {
      std::set<uint64_t> up, down, users;
      QV_RETURN_IF_ERROR(
          store.ScanOps(collection_id, since, [&](uint64_t seq, storage::OpRecord&& op) {
            if (seq > last_op) return Status::Ok();
            for (uint64_t id : op.upserted) up.insert(id), down.erase(id);
            for (uint64_t id : op.deleted) down.insert(id), up.erase(id);
            users.insert(op.users.begin(), op.users.end());
            return Status::Ok();
          }));
      changes.items_upserted.assign(up.begin(), up.end());
      changes.items_deleted.assign(down.begin(), down.end());
      changes.users_changed.assign(users.begin(), users.end());
      run.incremental = true;
    }
  }
  storage::WriteBatch batch;
  if (!run.incremental) {
    for (const std::string& kind : run.kinds) batch.DropListKind(collection_id, kind);
  }
  HostWriter writer(store, collection_id, run.kinds, run.incremental, batch);
  Status s;
  try {
    s = run.incremental ? p->Update(ctx, changes, writer) : p->Build(ctx, writer);
  } catch (const std::exception& e) {
    s = InternalError(std::string("threw an exception: ") + e.what());
  } catch (...) {
    s = InternalError("threw an exception");
  }
  if (s.ok()) s = ctx.type_error();
  if (!s.ok()) {
    return Status(s.code(), "plugin '" + plugin + "' failed; the previous lists stay in force: " +
                                std::string(s.message()));
  }
  for (const std::string& kind : run.kinds) {
    batch.PutListInfo(collection_id,
                      storage::ListInfo{kind, plugin, canonical,
                                        writer.KeysAfter(kind, keys_before[kind]), last_op});
  }
  run.lists = writer.puts();
  run.removed = writer.removes();
  QV_RETURN_IF_ERROR(commit(batch));
  return run;
}

}  // namespace quiver::engine
