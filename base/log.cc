#include "base/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>

#include "base/json_string.h"

namespace quiver::log {
namespace {

// The format is read on every event; the logger is set once by Configure (or on first use).
std::atomic<Format> g_format{Format::kText};
std::once_flag g_once;
std::shared_ptr<spdlog::logger> g_logger;

spdlog::level::level_enum ToSpd(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

void SetPattern(spdlog::logger& logger, Format format) {
  // spdlog writes the time and level; the event and its fields are the message.
  logger.set_pattern(format == Format::kJson ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})"
                                             : "%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                     spdlog::pattern_time_type::utc);
}

spdlog::logger& Logger() {
  std::call_once(g_once, [] {
    g_logger = std::make_shared<spdlog::logger>("quiver",
                                                std::make_shared<spdlog::sinks::stderr_sink_mt>());
    SetPattern(*g_logger, Format::kText);
    g_logger->set_level(spdlog::level::info);
    g_logger->flush_on(spdlog::level::debug);  // every line, as it happens
  });
  return *g_logger;
}

// Text: a string with a space, '=', a quote or a control character is quoted as in JSON.
void AppendTextString(std::string& out, std::string_view s) {
  const bool plain =
      !s.empty() && s.find_first_of(" =\"\\") == std::string_view::npos &&
      std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (plain) {
    out += s;
  } else {
    AppendJsonString(out, s);
  }
}

void AppendValue(std::string& out, const Field::Value& v, Format format) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string_view>) {
          format == Format::kJson ? AppendJsonString(out, x) : AppendTextString(out, x);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          out += std::isfinite(x) || format == Format::kText ? fmt::format("{:.6g}", x) : "null";
        } else {
          out += fmt::format("{}", x);
        }
      },
      v);
}

}  // namespace

Status ParseFormat(std::string_view name, Format* out) {
  if (name == "text") {
    *out = Format::kText;
  } else if (name == "json") {
    *out = Format::kJson;
  } else {
    return InvalidArgumentError("log format '" + std::string(name) + "' is not text or json");
  }
  return Status::Ok();
}

Status ParseLevel(std::string_view name, Level* out) {
  if (name == "debug") {
    *out = Level::kDebug;
  } else if (name == "info") {
    *out = Level::kInfo;
  } else if (name == "warn") {
    *out = Level::kWarn;
  } else if (name == "error") {
    *out = Level::kError;
  } else if (name == "off") {
    *out = Level::kOff;
  } else {
    return InvalidArgumentError("log level '" + std::string(name) +
                                "' is not debug, info, warn, error or off");
  }
  return Status::Ok();
}

void Configure(Format format, Level level) {
  spdlog::logger& logger = Logger();
  g_format.store(format);
  SetPattern(logger, format);
  logger.set_level(ToSpd(level));
}

bool Enabled(Level level) { return Logger().should_log(ToSpd(level)); }

void Write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  spdlog::logger& logger = Logger();
  if (!logger.should_log(ToSpd(level))) return;
  const Format format = g_format.load(std::memory_order_relaxed);
  std::string line;
  line.reserve(64 + 24 * fields.size());
  if (format == Format::kJson) {
    line += "\"event\":";
    AppendJsonString(line, event);
    for (const Field& f : fields) {
      line += ',';
      AppendJsonString(line, f.key);
      line += ':';
      AppendValue(line, f.value, format);
    }
  } else {
    line += event;
    for (const Field& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      AppendValue(line, f.value, format);
    }
  }
  logger.log(ToSpd(level), "{}", line);
}

}  // namespace quiver::log
