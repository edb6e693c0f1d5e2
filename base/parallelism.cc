#include "base/parallelism.h"

#include <algorithm>
#include <thread>

namespace quiver {
namespace {
thread_local size_t budget = 0;
}  // namespace

size_t ParallelismBudget() {
  if (budget > 0) return budget;
  return std::max(1u, std::thread::hardware_concurrency());
}

void SetParallelismBudget(size_t threads) { budget = threads; }

}  // namespace quiver
