// Writes a seed corpus for frame_fuzzer: one valid request frame of every kind and a few
// responses, so that fuzzing starts from buffers the Verifier accepts.
// Usage: frame_seeds DIR
#include <cstdio>
#include <fstream>
#include <string>

#include "net/schema/wire_codec.h"

int main(int argc, char** argv) {
  using namespace quiver;
  using namespace quiver::net;
  if (argc != 2) return 2;
  ItemRecord item;
  item.id = 3;
  item.vector = {1, 2, 3, 4};
  item.topic_weights = {0.5f, 0.5f};
  item.category = 2;
  item.tags = {7};
  item.payload = "{\"a\":1}";
  CollectionSchema schema;
  schema.name = "m";
  schema.dim = 4;
  std::vector<Call> calls = {
      CreateCollectionCall{schema},
      UpsertCall{"m", {item}},
      DeleteCall{"m", {1}},
      GetCall{"m", {1, 2}},
      PutUsersCall{"m", {UserRecord{1, {1, 2, 3, 4}, {{3, 4}}}}},
      AddEventsCall{"m", {Event{1, 2, 3}}},
      SearchCall{"m", {.vectors = {{1, 2, 3, 4}}, .k = 5, .ef = 10, .nprobe = 2, .refine = 3}},
      ReloadCall{"v2"},
      HealthCall{}};
  int n = 0;
  auto write = [&](const std::string& bytes) {
    std::ofstream(std::string(argv[1]) + "/seed" + std::to_string(n++), std::ios::binary) << bytes;
  };
  for (const Call& c : calls) write(EncodeRequestFrame(uint64_t(n), "key", c));
  write(EncodeResponseFrame(1, Reply{Status::Ok(), SearchResult{{{1, 0.5f}}}}));
  write(EncodeResponseFrame(2, Reply{Status::Ok(), GetResult{{item, std::nullopt}}}));
  write(EncodeResponseFrame(3, Reply{NotFoundError("x"), {}}));
  std::printf("%d seeds in %s\n", n, argv[1]);
  return 0;
}
