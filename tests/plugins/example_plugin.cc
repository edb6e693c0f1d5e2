// An outside plugin, built as its own shared object against plugins/plugin.h only: "same_tag"
// lists, for every item, the other items sharing its first tag (score: 1 / (1 + |id
// difference|)), k per item. Config: k (default 10), fail_after (write that many lists, then
// fail: for the all-or-nothing test), throw (throw instead of returning an error), hold (a path:
// create <hold>.started, then wait, up to 5 minutes, for <hold> to exist: for the tests of what
// runs while a plugin run is busy).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <thread>

#include "plugins/plugin.h"

namespace {

using namespace quiver;

class SameTag final : public plugins::Plugin {
 public:
  std::vector<std::string> Options() const override { return {"k", "fail_after", "throw", "hold"}; }
  std::vector<std::string> Kinds(const plugins::Context&) const override { return {"same_tag"}; }

  Status Build(const plugins::Context& ctx, plugins::Writer& out) override {
    const size_t k = size_t(ctx.Number("k", 10));
    const double fail_after = ctx.Number("fail_after", -1);
    const bool throws = ctx.Bool("throw", false);
    if (const std::string hold = ctx.String("hold", ""); !hold.empty()) {
      std::ofstream(hold + ".started").put('1');
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
      while (!std::filesystem::exists(hold)) {
        if (std::chrono::steady_clock::now() > give_up) {
          return Status(StatusCode::kDeadlineExceeded, "same_tag held for 5 minutes");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    std::map<int64_t, std::vector<uint64_t>> by_tag;
    std::vector<std::pair<uint64_t, int64_t>> items;
    Status s = ctx.ForEachItem([&](const ItemRecord& item) {
      if (!item.tags.empty()) {
        by_tag[item.tags[0]].push_back(item.id);
        items.emplace_back(item.id, item.tags[0]);
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    size_t written = 0;
    for (const auto& [id, tag] : items) {
      if (fail_after >= 0 && double(written) >= fail_after) {
        if (throws) throw std::runtime_error("same_tag was told to throw");
        return Status(StatusCode::kInternal, "same_tag was told to fail");
      }
      std::vector<Hit> list;
      for (uint64_t other : by_tag[tag]) {
        if (other != id)
          list.push_back(
              {other, float(1.0 / (1.0 + double(other > id ? other - id : id - other)))});
      }
      std::sort(list.begin(), list.end(),
                [](const Hit& a, const Hit& b) { return a.score > b.score; });
      if (list.size() > k) list.resize(k);
      s = out.Put("same_tag", id, std::move(list));
      if (!s.ok()) return s;
      ++written;
    }
    return Status::Ok();
  }
};

plugins::Plugin* Create(const char* name) {
  return std::string_view(name) == "same_tag" ? new SameTag() : nullptr;
}

}  // namespace

QUIVER_PLUGIN_EXPORT("same_tag", Create)
