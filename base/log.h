// The process's log (spdlog): one line per event on stderr, text or JSON, with a level.
//
//   log::Info("reload", {{"version", "v2"}, {"previous", "initial"}, {"ms", 1200}});
//
// text: 2026-12-01T02:41:11.123Z info reload version=v2 previous=initial ms=1200
// json: {"time":"2026-12-01T02:41:11.123Z","level":"info","event":"reload","version":"v2",...}
//
// An event is a short name and fields; values are strings, integers, floats or booleans (text
// quotes a string holding a space, '=' or '"'; JSON escapes it). Until Configure runs, events
// go to stderr as text at level info. Separate from quiver_base so that the client library does
// not depend on spdlog.
//
// Thread-safety: every function may be called concurrently (Configure at start-up).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <variant>

#include "base/status.h"

namespace quiver::log {

enum class Format : uint8_t { kText, kJson };
enum class Level : uint8_t { kDebug, kInfo, kWarn, kError, kOff };

// kInvalidArgument for a name other than text/json, or debug/info/warn/error/off.
Status ParseFormat(std::string_view name, Format* out);
Status ParseLevel(std::string_view name, Level* out);

void Configure(Format format, Level level);
bool Enabled(Level level);

struct Field {
  using Value = std::variant<std::string_view, int64_t, uint64_t, double, bool>;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  template <typename T>
  requires std::is_integral_v<T> Field(std::string_view k, T v)
      : key(k), value(std::is_signed_v<T> ? Value(int64_t(v)) : Value(uint64_t(v))) {}
  std::string_view key;
  Value value;
};

void Write(Level level, std::string_view event, std::initializer_list<Field> fields);
inline void Debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kDebug, event, fields);
}
inline void Info(std::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, event, fields);
}
inline void Warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kWarn, event, fields);
}
inline void Error(std::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kError, event, fields);
}

}  // namespace quiver::log
