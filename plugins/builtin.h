// The built-in plugins (docs/plugins.md has their parameters and formulas):
//   i2i_knn  item -> items most similar by embedding, through the collection's index
//   u2u_knn  user -> users most similar by user vector
//   itemcf   item -> items co-occurring in user histories (cosine, damped for popular items)
//   intent   user -> clusters with the user's learned intent (quota p "learned")
#pragma once

#include <memory>
#include <string_view>

#include "plugins/plugin.h"

namespace quiver::plugins {

// A new built-in plugin, or nullptr for an unknown name.
std::unique_ptr<Plugin> CreateBuiltin(std::string_view name);
inline constexpr std::string_view kBuiltinNames[] = {"i2i_knn", "u2u_knn", "itemcf", "intent"};

}  // namespace quiver::plugins
