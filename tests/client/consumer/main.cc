// Creates a collection, writes items and searches them through an installed quiver::client.
// Usage: consumer PORT
#include <cstdio>
#include <cstdlib>

#include "client/client.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  quiver::client::ClientOptions o;
  o.port = uint16_t(std::atoi(argv[1]));
  auto client = quiver::client::Client::Connect(o);
  if (!client.ok()) {
    std::fprintf(stderr, "connect: %s\n", client.status().ToString().c_str());
    return 1;
  }
  quiver::CollectionSchema schema;
  schema.name = "consumer";
  schema.dim = 3;
  schema.index.type = quiver::IndexSpec::Type::kFlat;
  if (auto r = (*client)->CreateCollection(schema); !r.ok()) {
    std::fprintf(stderr, "create: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::vector<quiver::ItemRecord> items(3);
  for (int i = 0; i < 3; ++i) {
    items[i].id = uint64_t(10 + i);
    items[i].vector = {float(i), 0.0f, 1.0f};
  }
  if (auto r = (*client)->Upsert("consumer", items); !r.ok()) {
    std::fprintf(stderr, "upsert: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::vector<float> q = {2.1f, 0.0f, 1.0f};
  auto hits = (*client)->Search("consumer", q, {.k = 1});
  if (!hits.ok() || hits->size() != 1 || (*hits)[0].id != 12) {
    std::fprintf(stderr, "search: %s\n",
                 hits.ok() ? "wrong result" : hits.status().ToString().c_str());
    return 1;
  }
  std::printf("consumer: OK (nearest id %llu)\n", (unsigned long long)(*hits)[0].id);
  return 0;
}
