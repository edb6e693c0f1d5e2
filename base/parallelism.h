// How many threads a parallel loop may use. The loops that split work over the machine's cores
// (index builds, k-means, PQ encoding, plugins) ask ParallelismBudget() instead of
// std::thread::hardware_concurrency(), so that work started on a thread with a budget (the
// server's maintenance threads: snapshots, compactions, plugin runs) leaves cores free for
// searches.
#pragma once

#include <cstddef>

namespace quiver {

// The calling thread's budget, or the machine's cores if it has none (at least 1).
size_t ParallelismBudget();
// Sets the calling thread's budget (0: none, the machine's cores).
void SetParallelismBudget(size_t threads);

}  // namespace quiver
