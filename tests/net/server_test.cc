// Round trips through both protocols against a server on 127.0.0.1 (ports picked by the OS),
// and malformed input of every kind: each gets a clear error and the server keeps serving.
#include "net/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "base/coding.h"
#include "base/work_pool.h"
#include "client/client.h"
#include "engine/data_root.h"
#include "net/json_api.h"
#include "net/schema/wire_codec.h"
#include "plugins/registry.h"
#include "tests/testing/http.h"
#include "tests/testing/temp_dir.h"

namespace quiver::net {
namespace {

using testing::Dial;
using testing::Http;
using testing::HttpAnswer;
using testing::ReadAll;

// Sends raw bytes on the binary port and returns the decoded response frames received.
std::vector<DecodedResponse> RawBinary(uint16_t port, const std::string& bytes, size_t expect) {
  int fd = Dial(port);
  EXPECT_GE(fd, 0);
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::vector<DecodedResponse> out;
  std::string buf;
  char chunk[4096];
  while (out.size() < expect) {
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    buf.append(chunk, size_t(n));
    while (buf.size() >= 4 && buf.size() >= 4 + DecodeFrameLength(buf.data())) {
      const uint32_t len = DecodeFrameLength(buf.data());
      auto r = DecodeResponse(std::string_view(buf).substr(4, len));
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) out.push_back(std::move(*r));
      buf.erase(0, 4 + len);
    }
  }
  ::close(fd);
  return out;
}

class ServerTest : public ::testing::Test {
 protected:
  // load_root false: the server starts on a prepared root that the test loads (DataRoot::Load).
  void StartServer(const std::string& rw_key = "", const std::string& ro_key = "",
                   const std::function<void(ServerOptions&)>& adjust = nullptr,
                   bool load_root = true) {
    auto root = load_root ? engine::DataRoot::Open(dir_.path() + "/root", {})
                          : engine::DataRoot::Prepare(dir_.path() + "/root", {});
    ASSERT_TRUE(root.ok()) << root.status();
    root_ = std::move(*root);
    ServerOptions o;
    o.http_port = 0;
    o.binary_port = 0;
    o.threads = 2;
    o.read_write_key = rw_key;
    o.read_only_key = ro_key;
    o.limits.max_body_bytes = 1 << 20;
    o.limits.max_k = 100;
    if (adjust) adjust(o);
    server_ = std::make_unique<Server>(*root_, o);
    ASSERT_TRUE(server_->Start().ok());
  }

  std::unique_ptr<client::Client> Connect(const std::string& key = "") {
    client::ClientOptions o;
    o.port = server_->binary_port();
    o.api_key = key;
    auto c = client::Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  quiver::testing::ScopedTempDir dir_;
  std::unique_ptr<engine::DataRoot> root_;
  std::unique_ptr<Server> server_;
};

constexpr const char* kSchemaJson =
    R"({"name":"m","dim":4,"metric":"l2","index":{"type":"hnsw","m":8,"ef_construction":40}})";

std::vector<ItemRecord> Items(size_t n) {
  std::mt19937 rng(5);
  std::normal_distribution<float> g;
  std::vector<ItemRecord> items(n);
  for (size_t i = 0; i < n; ++i) {
    items[i].id = i + 1;
    for (int d = 0; d < 4; ++d) items[i].vector.push_back(g(rng));
    items[i].payload = "{\"i\":" + std::to_string(i) + "}";
  }
  return items;
}

TEST_F(ServerTest, BothProtocolsGiveTheSameAnswers) {
  StartServer();
  HttpAnswer created = Http(server_->http_port(), "POST", "/v1/collections", kSchemaJson);
  ASSERT_EQ(created.status, 200) << created.body;
  auto client = Connect();
  auto items = Items(300);
  auto w = client->Upsert("m", items);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->changed, 300u);

  // The same search, as JSON and as FlatBuffers.
  const std::vector<float> q = items[17].vector;
  std::string vec;
  for (float x : q) vec += (vec.empty() ? "" : ",") + std::to_string(x);
  auto hits = client->Search("m", q, {.k = 5, .ef = 50});
  ASSERT_TRUE(hits.ok()) << hits.status();
  ASSERT_EQ(hits->size(), 5u);
  EXPECT_EQ((*hits)[0].id, 18u);
  // JSON floats are printed exactly, so the REST query is the same vector bit for bit only if
  // it is sent exactly: encode the reply of a binary search and compare with the REST body.
  std::string exact;
  {
    HttpReply r = EncodeHttpReply(Reply{Status::Ok(), SearchResult{*hits}});
    exact = r.body;
  }
  std::string qjson;
  for (float x : q) {
    char b[32];
    auto res = std::to_chars(b, b + 32, x);
    qjson += (qjson.empty() ? "" : ",") + std::string(b, res.ptr);
  }
  HttpAnswer rest = Http(server_->http_port(), "POST", "/v1/collections/m/search",
                         "{\"vector\":[" + qjson + "],\"k\":5,\"params\":{\"ef\":50}}");
  EXPECT_EQ(rest.status, 200);
  EXPECT_EQ(rest.body, exact);

  // Get, users, events, describe, list, versions and health through both.
  auto got = client->Get("m", {18, 999});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0], items[17]);
  EXPECT_FALSE((*got)[1].has_value());
  HttpAnswer rest_get =
      Http(server_->http_port(), "POST", "/v1/collections/m/items/get", R"({"ids":[18,999]})");
  EXPECT_EQ(rest_get.body, EncodeHttpReply(Reply{Status::Ok(), GetResult{*got}}).body);
  auto added = client->AddEvents("m", {Event{7, 18, 100}, Event{7, 19, 200}});
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, (WriteResult{0, 2}));  // not in the op log: no sequence on one process
  HttpAnswer rest_events = Http(server_->http_port(), "POST", "/v1/collections/m/events",
                                R"({"events":[{"user":8,"item":18,"timestamp":5}]})");
  EXPECT_EQ(rest_events.body, EncodeHttpReply(Reply{Status::Ok(), WriteResult{0, 1}}).body);
  auto user = client->GetUser("m", 7);
  ASSERT_TRUE(user.ok() && user->has_value());
  EXPECT_EQ((*user)->history[0], (Interaction{19, 200}));
  HttpAnswer rest_user = Http(server_->http_port(), "GET", "/v1/collections/m/users/7");
  EXPECT_EQ(rest_user.body, EncodeHttpReply(Reply{Status::Ok(), UserResult{*user}}).body);
  auto info = client->DescribeCollection("m");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->items, 300u);
  EXPECT_EQ(Http(server_->http_port(), "GET", "/v1/collections/m").body,
            EncodeHttpReply(Reply{Status::Ok(), *info}).body);
  EXPECT_TRUE(client->Snapshot("m").ok());
  auto versions = client->ListVersions();
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->current, "initial");
  EXPECT_EQ(client->Health()->status, "serving");
  HttpAnswer metrics = Http(server_->http_port(), "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(
      metrics.body.find("quiver_requests_total{op=\"search\",protocol=\"binary\",code=\"OK\"} 1"),
      std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("quiver_collection_items{collection=\"m\"} 300"), std::string::npos);

  // Async calls and deletes.
  auto f1 = client->CallAsync(DeleteCall{"m", {1, 2}});
  auto f2 = client->CallAsync(SearchCall{"m", {.vectors = {q}, .k = 3}});
  EXPECT_TRUE(f1.get().status.ok());
  EXPECT_TRUE(f2.get().status.ok());
  EXPECT_EQ(client->DescribeCollection("m")->items, 298u);
}

TEST_F(ServerTest, MultiVectorQuotaSearchOverBothProtocols) {
  StartServer();
  ASSERT_EQ(Http(server_->http_port(), "POST", "/v1/collections",
                 R"({"name":"q","dim":4,"clusters":2,"index":{"type":"flat"}})")
                .status,
            200);
  auto client = Connect();
  auto items = Items(100);
  for (auto& item : items) item.cluster = uint32_t(item.id % 2);
  ASSERT_TRUE(client->Upsert("q", items).ok());
  SearchCall call;
  call.collection = "q";
  call.query.vectors = {items[0].vector, items[1].vector};
  call.query.quota = QuotaSpec{{0.8f, 0.2f}, 1.0f, 10, 1.0f};
  auto r = client->Query(call);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->quotas, (std::vector<uint32_t>{8, 2}));
  EXPECT_EQ(r->per_cluster, (std::vector<uint32_t>{8, 2}));
  ASSERT_EQ(r->hits.size(), 10u);
  EXPECT_EQ(r->hit_cluster.size(), 10u);
  auto json_floats = [](const std::vector<float>& v) {
    std::string out;
    for (float x : v) {
      char b[32];
      auto res = std::to_chars(b, b + 32, x);
      if (!out.empty()) out += ',';
      out.append(b, res.ptr);
    }
    return "[" + out + "]";
  };
  HttpAnswer rest =
      Http(server_->http_port(), "POST", "/v1/collections/q/search",
           "{\"vectors\":[" + json_floats(items[0].vector) + "," + json_floats(items[1].vector) +
               "],\"quota\":{\"p\":[0.8,0.2],\"total\":10}}");
  EXPECT_EQ(rest.status, 200);
  EXPECT_EQ(rest.body, EncodeHttpReply(Reply{Status::Ok(), *r}).body);
  // Quota p of the wrong length, over both protocols.
  call.query.quota->p = {1.0f};
  EXPECT_EQ(client->Query(call).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Http(server_->http_port(), "POST", "/v1/collections/q/search",
                 "{\"vector\":[1,2,3,4],\"quota\":{\"p\":[1],\"total\":10}}")
                .status,
            400);
}

TEST_F(ServerTest, MvkeSearchOverBothProtocols) {
  StartServer();
  ASSERT_EQ(
      Http(
          server_->http_port(), "POST", "/v1/collections",
          R"({"name":"t","dim":4,"metric":"ip","topics":2,"topic_concat":true,"index":{"type":"flat"}})")
          .status,
      200);
  auto client = Connect();
  auto items = Items(60);
  for (size_t i = 0; i < items.size(); ++i) {
    const float a = float(i % 5) / 4.0f;
    items[i].topic_weights = {a, 1.0f - a};
  }
  ASSERT_TRUE(client->Upsert("t", items).ok());
  SearchCall call;
  call.collection = "t";
  call.query.k = 5;
  call.query.mvke = MvkeSpec{{{1, 0, 0, 0}, {0, 1, 0, 0}}, MvkeStrategy::kConcat, 0, 0};
  auto r = client->Query(call);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->hits.size(), 5u);
  // The exact score of the best hit: alpha_0 * t[0] + alpha_1 * t[1].
  const ItemRecord& best = items[r->hits[0].id - 1];
  EXPECT_NEAR(r->hits[0].score,
              best.topic_weights[0] * best.vector[0] + best.topic_weights[1] * best.vector[1],
              1e-5);
  HttpAnswer rest =
      Http(server_->http_port(), "POST", "/v1/collections/t/search",
           R"({"k":5,"mvke":{"user_vectors":[[1,0,0,0],[0,1,0,0]],"strategy":"concat"}})");
  EXPECT_EQ(rest.status, 200);
  EXPECT_EQ(rest.body, EncodeHttpReply(Reply{Status::Ok(), *r}).body);
  // One user vector for two topics: a clear error on both.
  call.query.mvke->user_vectors.pop_back();
  auto wrong = client->Query(call);
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("2 topics"), std::string::npos) << wrong.status();
  EXPECT_EQ(Http(server_->http_port(), "POST", "/v1/collections/t/search",
                 R"({"mvke":{"user_vectors":[[1,0,0,0]]}})")
                .status,
            400);
}

TEST_F(ServerTest, FreshSearchOverBothProtocols) {
  StartServer();
  ASSERT_EQ(Http(server_->http_port(), "POST", "/v1/collections",
                 R"({"name":"f","dim":4,"index":{"type":"flat"}})")
                .status,
            200);
  auto client = Connect();
  auto items = Items(80);
  const int64_t now = 1700000000;
  for (size_t i = 0; i < items.size(); ++i)
    items[i].timestamp = now - int64_t(i) * 600;  // every 10 minutes
  ASSERT_TRUE(client->Upsert("f", items).ok());
  SearchCall call;
  call.collection = "f";
  call.query.vectors = {{1, 0, 0, 0}};
  call.query.k = 20;
  call.query.fresh = Fresh{.pool = 3600, .now = now, .boost = 0.5f, .half_life = 1800};
  call.with_payload = true;
  auto r = client->Query(call);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->hits.size(), 7u);  // ages 0, 10, ..., 60 minutes
  ASSERT_EQ(r->hit_payload.size(), 7u);
  for (size_t i = 0; i < r->hits.size(); ++i) {
    EXPECT_LE(r->hits[i].id, 7u);
    EXPECT_EQ(r->hit_payload[i], items[r->hits[i].id - 1].payload);
  }
  HttpAnswer rest = Http(
      server_->http_port(), "POST", "/v1/collections/f/search",
      R"({"vector":[1,0,0,0],"k":20,"payload":true,"fresh":{"pool":"1h","now":1700000000,"boost":0.5,"half_life":"30m"}})");
  EXPECT_NE(rest.body.find(R"("payload":{"i":)"), std::string::npos) << rest.body;
  EXPECT_EQ(rest.status, 200);
  EXPECT_EQ(rest.body, EncodeHttpReply(Reply{Status::Ok(), *r}).body);
  // One hit shape whatever the operators: "vector" (which query vector won the hit) only with
  // several query vectors, over REST and the binary protocol alike.
  const std::string one = R"("vector":[1,0,0,0],"k":5)";
  for (const std::string& ops :
       {std::string(), std::string(R"(,"filter":{"range":{"timestamp":{"gte":1699990000}}})"),
        std::string(R"(,"rerank":{"mmr":{"lambda":0.5}})"),
        std::string(R"(,"fresh":{"pool":"1h","now":1700000000,"boost":0.5,"half_life":"30m"})"),
        std::string(R"(,"exclude":[1,2])")}) {
    HttpAnswer a =
        Http(server_->http_port(), "POST", "/v1/collections/f/search", "{" + one + ops + "}");
    EXPECT_EQ(a.status, 200) << ops << ": " << a.body;
    EXPECT_NE(a.body.find(R"("hits":[{"id":)"), std::string::npos) << ops << ": " << a.body;
    EXPECT_EQ(a.body.find(R"("vector")"), std::string::npos) << ops << ": " << a.body;
    HttpAnswer two = Http(server_->http_port(), "POST", "/v1/collections/f/search",
                          R"({"vectors":[[1,0,0,0],[0,1,0,0]],"k":5)" + ops + "}");
    EXPECT_EQ(two.status, 200) << ops << ": " << two.body;
    EXPECT_NE(two.body.find(R"(,"vector":)"), std::string::npos) << ops << ": " << two.body;
  }
  // A boost without a half-life: a clear error on both.
  call.query.fresh->half_life = 0;
  auto wrong = client->Query(call);
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("half_life"), std::string::npos) << wrong.status();
  EXPECT_EQ(Http(server_->http_port(), "POST", "/v1/collections/f/search",
                 R"({"vector":[1,0,0,0],"fresh":{"boost":0.5}})")
                .status,
            400);
}

// Batch search answers in order, each search as it would alone, an error staying with its
// search; count and scroll over REST and the client agree.
TEST_F(ServerTest, BatchSearchCountAndScrollOverBothProtocols) {
  StartServer();
  const uint16_t http = server_->http_port();
  ASSERT_EQ(Http(http, "POST", "/v1/collections", kSchemaJson).status, 200);
  auto client = Connect();
  auto items = Items(60);
  for (ItemRecord& it : items) it.category = int64_t(it.id % 4);
  ASSERT_TRUE(client->Upsert("m", items).ok());

  HttpAnswer batch = Http(http, "POST", "/v1/collections/m/search/batch",
                          R"({"searches":[{"vector":[1,0,0,0],"k":3},)"
                          R"({"vector":[1,0,0],"k":3},{"vector":[0,1,0,0],"k":1000},)"
                          R"({"vector":[0,0,1,0],"k":2,"payload":true}]})");
  ASSERT_EQ(batch.status, 200) << batch.body;
  std::string expected = R"({"results":[)";
  const std::vector<std::string> alone = {
      R"({"vector":[1,0,0,0],"k":3})", R"({"vector":[1,0,0],"k":3})",
      R"({"vector":[0,1,0,0],"k":1000})", R"({"vector":[0,0,1,0],"k":2,"payload":true})"};
  for (size_t i = 0; i < alone.size(); ++i) {
    expected += (i ? "," : "") + Http(http, "POST", "/v1/collections/m/search", alone[i]).body;
  }
  expected += "]}";
  EXPECT_EQ(batch.body, expected);
  EXPECT_NE(batch.body.find("INVALID_ARGUMENT"), std::string::npos);  // dim 3, and k 1000
  std::vector<SearchCall> searches(3);
  for (SearchCall& c : searches) c.collection = "m";
  searches[0].query.vectors = {{1, 0, 0, 0}};
  searches[1].query.vectors = {{1, 0, 0, 0}};
  searches[1].collection = "none";
  searches[2].query.vectors = {{0, 0, 0, 1}};
  searches[2].query.k = 4;
  auto outcomes = client->SearchBatch(searches);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 3u);
  EXPECT_TRUE((*outcomes)[0].status.ok());
  EXPECT_EQ((*outcomes)[0].result, *client->Query(searches[0]));
  EXPECT_EQ((*outcomes)[1].status.code(), StatusCode::kNotFound);
  EXPECT_EQ((*outcomes)[2].result.hits.size(), 4u);
  std::vector<SearchCall> many(1001, searches[0]);
  EXPECT_EQ(client->SearchBatch(many).status().code(), StatusCode::kResourceExhausted);

  EXPECT_EQ(Http(http, "GET", "/v1/collections/m/count").body, R"({"count":60})");
  EXPECT_EQ(
      Http(http, "POST", "/v1/collections/m/count", R"({"filter":{"eq":{"category":1}}})").body,
      R"({"count":15})");
  EXPECT_EQ(*client->Count("m", Filter{Filter::Op::kEq, Filter::Field::kCategory, {1}}), 15u);
  EXPECT_EQ(client->Count("none").status().code(), StatusCode::kNotFound);

  // Every item once, in id order, through pages of 25 over the client; the same pages over
  // REST.
  std::vector<ItemRecord> all;
  ScrollCall scroll{"m"};
  scroll.limit = 25;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = client->Scroll(scroll);
    ASSERT_TRUE(page.ok()) << page.status();
    HttpAnswer rest = Http(http, "POST", "/v1/collections/m/scroll",
                           R"({"limit":25,"cursor":)" + std::to_string(scroll.cursor) + "}");
    EXPECT_EQ(rest.body, EncodeHttpReply(Reply{Status::Ok(), *page}).body);
    all.insert(all.end(), page->items.begin(), page->items.end());
    if (!page->next) break;
    scroll.cursor = *page->next;
  }
  EXPECT_EQ(all, items);
  HttpAnswer bare = Http(http, "POST", "/v1/collections/m/scroll",
                         R"({"limit":2,"vectors":false,"payload":false})");
  EXPECT_EQ(bare.body.find(R"("payload":{)"), std::string::npos) << bare.body;
  EXPECT_NE(bare.body.find(R"("vector":[])"), std::string::npos) << bare.body;
  EXPECT_NE(bare.body.find(R"("next":3)"), std::string::npos) << bare.body;
  EXPECT_EQ(Http(http, "POST", "/v1/collections/m/scroll", R"({"limit":0})").status, 400);
}

// Client::CallMany: a batch pipelined on one connection, answered in order of the calls, each
// reply the one the call gets alone; an error in the batch stays with its call.
TEST_F(ServerTest, PipelinedBatchesAnswerEveryCallInOrder) {
  StartServer();
  ASSERT_EQ(Http(server_->http_port(), "POST", "/v1/collections", kSchemaJson).status, 200);
  auto client = Connect();
  auto items = Items(60);
  ASSERT_TRUE(client->Upsert("m", items).ok());
  std::vector<Call> calls;
  for (size_t i = 0; i < 20; ++i)
    calls.push_back(SearchCall{"m", {.vectors = {items[i].vector}, .k = 5}});
  calls.push_back(
      SearchCall{"nope", {.vectors = {items[0].vector}, .k = 5}});  // NOT_FOUND, in the middle
  calls.push_back(GetCall{"m", {3, 999}});
  calls.push_back(SearchCall{"m", {.vectors = {{1, 2}}, .k = 5}});  // wrong dimension
  auto replies = client->CallMany(calls);
  ASSERT_EQ(replies.size(), calls.size());
  for (size_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(replies[i].status.ok()) << i << ": " << replies[i].status;
    net::Reply alone = client->Call(calls[i]);
    EXPECT_TRUE(replies[i].body == alone.body) << i;
    EXPECT_EQ(std::get<SearchResult>(replies[i].body).hits[0].id, items[i].id) << i;
  }
  EXPECT_EQ(replies[20].status.code(), StatusCode::kNotFound);
  ASSERT_TRUE(replies[21].status.ok());
  EXPECT_TRUE(std::get<GetResult>(replies[21].body).items[0].has_value());
  EXPECT_FALSE(std::get<GetResult>(replies[21].body).items[1].has_value());
  EXPECT_EQ(replies[22].status.code(), StatusCode::kInvalidArgument);
  // The connection is still good for more.
  EXPECT_TRUE(client->Search("m", items[0].vector, {.k = 1}).ok());
  EXPECT_TRUE(client->CallMany(std::vector<Call>{}).empty());
}

TEST_F(ServerTest, PluginsAndListsOverBothProtocols) {
  StartServer();
  ASSERT_EQ(Http(server_->http_port(), "POST", "/v1/collections",
                 R"({"name":"p","dim":4,"metric":"ip","index":{"type":"flat"}})")
                .status,
            200);
  auto client = Connect();
  ASSERT_TRUE(client->Upsert("p", Items(50)).ok());
  auto plugins = client->ListPlugins();
  ASSERT_TRUE(plugins.ok());
  EXPECT_NE(std::find(plugins->begin(), plugins->end(), "itemcf"), plugins->end());
  auto run = client->RunPlugin("p", "i2i_knn", R"({"k":5})");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->lists, 50u);
  HttpAnswer rest_run = Http(server_->http_port(), "POST", "/v1/collections/p/plugins/i2i_knn/run",
                             R"({"config":{"k":5},"incremental":true})");
  EXPECT_EQ(rest_run.status, 200);
  EXPECT_EQ(rest_run.body, R"({"kinds":["i2i"],"lists":0,"removed":0,"incremental":true})");
  auto list = client->GetList("p", "i2i", 7);
  ASSERT_TRUE(list.ok() && list->has_value()) << list.status();
  EXPECT_EQ((*list)->size(), 5u);
  HttpAnswer rest = Http(server_->http_port(), "GET", "/v1/collections/p/lists/i2i/7", "");
  EXPECT_EQ(rest.status, 200);
  EXPECT_EQ(rest.body, EncodeHttpReply(Reply{Status::Ok(), ListResult{*list}}).body);
  EXPECT_EQ(Http(server_->http_port(), "GET", "/v1/collections/p/lists/i2i/999", "").body,
            R"({"list":null})");
  auto infos = client->ListLists("p");
  ASSERT_TRUE(infos.ok());
  ASSERT_EQ(infos->size(), 1u);
  EXPECT_EQ((*infos)[0].keys, 50u);
  HttpAnswer rest_infos = Http(server_->http_port(), "GET", "/v1/collections/p/lists", "");
  EXPECT_NE(rest_infos.body.find(R"("config":{"k":5})"), std::string::npos) << rest_infos.body;
  // A channels query (u2i2i from a seed), the same over both protocols.
  SearchCall ch;
  ch.collection = "p";
  ch.query.k = 3;
  ch.query.channels = Channels{};
  ch.query.channels->u2i = false;
  ch.query.channels->seed_items = {7};
  auto chr = client->Query(ch);
  ASSERT_TRUE(chr.ok()) << chr.status();
  ASSERT_EQ(chr->hits.size(), 3u);
  EXPECT_EQ(chr->hit_channels, (std::vector<uint8_t>{2, 2, 2}));
  HttpAnswer rest_ch = Http(server_->http_port(), "POST", "/v1/collections/p/search",
                            R"({"k":3,"channels":{"u2i":false,"seed_items":[7]}})");
  EXPECT_EQ(rest_ch.status, 200);
  EXPECT_EQ(rest_ch.body, EncodeHttpReply(Reply{Status::Ok(), *chr}).body);
  EXPECT_NE(rest_ch.body.find(R"("channels":["u2i2i"])"), std::string::npos) << rest_ch.body;
  // Errors on both: an unknown plugin, a bad config.
  EXPECT_EQ(client->RunPlugin("p", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Http(server_->http_port(), "POST", "/v1/collections/p/plugins/nope/run", "{}").status,
            404);
  EXPECT_EQ(client->RunPlugin("p", "i2i_knn", R"({"k":"x"})").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Http(server_->http_port(), "POST", "/v1/collections/p/plugins/i2i_knn/run",
                 R"({"config":{"k":0}})")
                .status,
            400);
}

// Searches never queue behind other work: with one I/O thread, one write thread and one
// maintenance thread, a plugin run held open (the example plugin's `hold`) and a write stuck
// behind it do not stop searches over either protocol; a maintenance call beyond the queue's
// limit is refused at once; everything completes once the run is released. (Before the pools,
// the held run occupied the only I/O thread and the searches waited for it.)
TEST_F(ServerTest, SearchesAnswerWhileAPluginRunAndWritesAreBusy) {
  static const Status loaded = plugins::Registry::Global().LoadObject(QUIVER_EXAMPLE_PLUGIN);
  ASSERT_TRUE(loaded.ok()) << loaded;
  StartServer("", "", [](ServerOptions& o) {
    o.threads = 1;
    o.write_threads = 1;
    o.maintenance_threads = 1;
    o.max_queued_maintenance = 1;
  });
  auto client = Connect();
  ASSERT_TRUE(client->CreateCollection({.name = "m", .dim = 4}).ok());
  std::vector<ItemRecord> items = Items(40);
  for (ItemRecord& item : items) item.tags = {int64_t(item.id % 3)};
  ASSERT_TRUE(client->Upsert("m", items).ok());
  const std::string hold = dir_.path() + "/hold";
  auto run =
      client->CallAsync(RunPluginCall{"m", "same_tag", R"({"hold":")" + hold + R"("})", false},
                        std::chrono::milliseconds(600000));
  while (!std::filesystem::exists(hold + ".started")) {
    ASSERT_NE(run.wait_for(std::chrono::milliseconds(1)), std::future_status::ready)
        << run.get().status;
  }
  // The maintenance thread is held and its queue takes one call: of two more maintenance calls,
  // one waits in the queue and the other is refused at once.
  CollectionSchema c1{.name = "c1", .dim = 4}, c2{.name = "c2", .dim = 4};
  std::future<Reply> creates[2] = {
      client->CallAsync(CreateCollectionCall{c1}, std::chrono::milliseconds(600000)),
      client->CallAsync(CreateCollectionCall{c2}, std::chrono::milliseconds(600000))};
  int refused = -1;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (refused < 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "no maintenance call was refused";
    for (int i = 0; i < 2 && refused < 0; ++i) {
      if (creates[i].wait_for(std::chrono::milliseconds(1)) == std::future_status::ready) {
        refused = i;
      }
    }
  }
  const Reply refusal = creates[refused].get();
  EXPECT_EQ(refusal.status.code(), StatusCode::kUnavailable) << refusal.status;
  EXPECT_NE(refusal.status.message().find("retry later"), std::string::npos) << refusal.status;
  // Writes still go through (the write pool is apart from the maintenance pool).
  std::vector<ItemRecord> more = Items(3);
  for (ItemRecord& item : more) {
    item.id += 100;
    item.tags = {1};
  }
  auto write = client->Upsert("m", more);
  ASSERT_TRUE(write.ok()) << write.status();
  // Searches, binary and REST, answer while the run is held.
  for (int i = 0; i < 20; ++i) {
    auto hits = client->Search("m", items[size_t(i)].vector, {.k = 3});
    ASSERT_TRUE(hits.ok()) << hits.status();
    ASSERT_FALSE(hits->empty());
  }
  EXPECT_EQ(Http(server_->http_port(), "POST", "/v1/collections/m/search",
                 R"({"vector":[0,0,0,0],"k":2})")
                .status,
            200);
  EXPECT_NE(run.wait_for(std::chrono::milliseconds(0)), std::future_status::ready);
  std::ofstream(hold).put('1');
  Reply run_reply = run.get();
  ASSERT_TRUE(run_reply.status.ok()) << run_reply.status;
  EXPECT_EQ(std::get<PluginRunResult>(run_reply.body).lists, 43u);  // the write came first
  const Reply queued = creates[1 - refused].get();
  EXPECT_TRUE(queued.status.ok()) << queued.status;
}

// The CPUs each thread of the process may run on, by thread name (as `ps -L` shows it).
std::multimap<std::string, std::vector<int>> CpusByThreadName() {
  std::multimap<std::string, std::vector<int>> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (!std::getline(comm, name)) continue;  // ended meanwhile
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(std::stoi(task.path().filename()), sizeof(set), &set) != 0) continue;
    std::vector<int> cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
    out.emplace(name, std::move(cpus));
  }
  return out;
}

// background_cpus puts the write and maintenance threads on those CPUs, and leaves the I/O
// threads (where searches run) on every CPU.
TEST_F(ServerTest, BackgroundThreadsRunOnTheBackgroundCpus) {
  const std::vector<int> all = ThreadCpus();
  ASSERT_FALSE(all.empty());
  const std::vector<int> background = {all.back()};
  StartServer("", "", [&](ServerOptions& o) {
    o.threads = 2;
    o.write_threads = 2;
    o.maintenance_threads = 1;
    o.background_cpus = background;
  });
  auto client = Connect();
  ASSERT_TRUE(client->CreateCollection({.name = "m", .dim = 4}).ok());  // maintenance
  ASSERT_TRUE(client->Upsert("m", Items(10)).ok());                     // a write
  const auto threads = CpusByThreadName();
  std::map<std::string, int> count;
  for (const auto& [name, cpus] : threads) {
    if (name == "quiver-write" || name == "quiver-maint") {
      EXPECT_EQ(cpus, background) << name;
    } else if (name == "quiver-io") {
      EXPECT_EQ(cpus, all) << name;
    }
    ++count[name];
  }
  EXPECT_EQ(count["quiver-write"], 2);
  EXPECT_EQ(count["quiver-maint"], 1);
  EXPECT_GE(count["quiver-io"], 2);
}

TEST_F(ServerTest, MalformedInputGetsErrorsAndTheServerKeepsServing) {
  StartServer();
  ASSERT_EQ(Http(server_->http_port(), "POST", "/v1/collections", kSchemaJson).status, 200);
  auto client = Connect();
  ASSERT_TRUE(client->Upsert("m", Items(50)).ok());
  const uint16_t http = server_->http_port(), bin = server_->binary_port();

  // REST: bad JSON, wrong types, dimension mismatch, k too large, unknown collection/route, big
  // body.
  EXPECT_EQ(Http(http, "POST", "/v1/collections/m/search", "{\"vector\":[1,2").status, 400);
  EXPECT_EQ(Http(http, "POST", "/v1/collections/m/search", R"({"vector":{"a":1}})").status, 400);
  HttpAnswer dim = Http(http, "POST", "/v1/collections/m/search", R"({"vector":[1,2,3]})");
  EXPECT_EQ(dim.status, 400);
  EXPECT_NE(dim.body.find("\"code\":\"INVALID_ARGUMENT\""), std::string::npos) << dim.body;
  EXPECT_EQ(
      Http(http, "POST", "/v1/collections/m/search", R"({"vector":[1,2,3,4],"k":1000})").status,
      400);
  EXPECT_EQ(Http(http, "POST", "/v1/collections/none/search", R"({"vector":[1,2,3,4]})").status,
            404);
  EXPECT_EQ(Http(http, "GET", "/v2/what").status, 404);
  EXPECT_EQ(Http(http, "POST", "/v1/collections/m/items", std::string(2 << 20, ' ')).status, 413);

  // Binary: an invalid FlatBuffer (answered with id 0), then a valid request on the same
  // connection still works.
  std::string garbage = "garbage frame bytes that are not a flatbuffer";
  std::string frame;
  PutFixed<uint32_t>(&frame, uint32_t(garbage.size()));
  frame += garbage;
  frame += EncodeRequestFrame(5, "", HealthCall{});
  auto answers = RawBinary(bin, frame, 2);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].id, 0u);
  EXPECT_EQ(answers[0].reply.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(answers[1].id, 5u);
  EXPECT_TRUE(answers[1].reply.status.ok());
  // A 4 GiB length prefix: refused before anything is allocated.
  std::string huge;
  PutFixed<uint32_t>(&huge, 0xFFFFFFFFu);
  answers = RawBinary(bin, huge + "xx", 1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].reply.status.code(), StatusCode::kResourceExhausted);
  // A frame over the 1 MiB limit is answered at once, naming the limit; its bytes are dropped
  // and the next request on the connection is answered.
  std::string over;
  PutFixed<uint32_t>(&over, uint32_t(3 << 20));
  over += std::string(3 << 20, 'x');
  over += EncodeRequestFrame(7, "", HealthCall{});
  answers = RawBinary(bin, over, 2);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].id, 0u);
  EXPECT_EQ(answers[0].reply.status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(answers[0].reply.status.message().find("limit of 1048576 bytes"), std::string::npos)
      << answers[0].reply.status;
  EXPECT_EQ(answers[1].id, 7u);
  EXPECT_TRUE(answers[1].reply.status.ok()) << answers[1].reply.status;
  // Through the client: the same answer, not retried (one more refusal on the server), and
  // not a transport error.
  auto refusals = [&] {
    const std::string text = Http(http, "GET", "/metrics").body;
    uint64_t total = 0;
    for (size_t at = text.find("protocol=\"binary\",code=\"RESOURCE_EXHAUSTED\"} ");
         at != std::string::npos;
         at = text.find("protocol=\"binary\",code=\"RESOURCE_EXHAUSTED\"} ", at + 1)) {
      total += std::stoull(text.substr(text.find("} ", at) + 2));
    }
    return total;
  };
  const uint64_t before = refusals();
  std::vector<ItemRecord> big = Items(20);
  for (ItemRecord& it : big) it.payload = "{\"blob\":\"" + std::string(100000, 'b') + "\"}";
  auto upsert = client->Upsert("m", big);
  EXPECT_EQ(upsert.status().code(), StatusCode::kResourceExhausted) << upsert.status();
  EXPECT_NE(upsert.status().message().find("--max-body-bytes"), std::string::npos);
  EXPECT_EQ(refusals(), before + 1);
  std::vector<net::Call> calls = {HealthCall{}, UpsertCall{"m", big}, HealthCall{}};
  auto replies = client->CallMany(calls);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_TRUE(replies[0].status.ok()) << replies[0].status;
  EXPECT_EQ(replies[1].status.code(), StatusCode::kResourceExhausted) << replies[1].status;
  EXPECT_TRUE(replies[2].status.ok()) << replies[2].status;
  EXPECT_EQ(refusals(), before + 2);
  // A truncated frame: the connection just ends; nothing breaks.
  std::string truncated = EncodeRequestFrame(6, "", HealthCall{});
  truncated.resize(truncated.size() - 3);
  EXPECT_TRUE(RawBinary(bin, truncated, 0).empty());
  // NaN in a vector, wrong dimension, k too large, unknown collection.
  std::vector<float> nan_vec = {1, std::nanf(""), 0, 0};
  EXPECT_EQ(client->Search("m", nan_vec).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> short_vec = {1, 2};
  EXPECT_EQ(client->Search("m", short_vec).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> ok_vec = {1, 2, 3, 4};
  EXPECT_EQ(client->Search("m", ok_vec, {.k = 101}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Search("none", ok_vec).status().code(), StatusCode::kNotFound);
  ItemRecord bad;
  bad.id = 1;
  bad.vector = {1, 2, INFINITY, 4};
  EXPECT_EQ(client->Upsert("m", {bad}).status().code(), StatusCode::kInvalidArgument);

  // Everyone else is still served.
  auto hits = client->Search("m", ok_vec, {.k = 3});
  ASSERT_TRUE(hits.ok()) << hits.status();
  EXPECT_EQ(hits->size(), 3u);
  EXPECT_EQ(Http(http, "GET", "/healthz").status, 200);
}

// A client sending `Expect: 100-continue` (curl above 1 MB) gets the interim 100 Continue before
// it sends the body; one whose Content-Length is over the limit gets 413 without sending it.
TEST_F(ServerTest, RestAnswersExpect100ContinueBeforeTheBody) {
  StartServer();
  const uint16_t http = server_->http_port();
  ASSERT_EQ(Http(http, "POST", "/v1/collections", kSchemaJson).status, 200);
  auto head = [](size_t length) {
    return "POST /v1/collections/m/items HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " +
           std::to_string(length) + "\r\n\r\n";
  };
  // Reads up to the end of one response head (the server sends nothing else before the body
  // arrives: without the interim answer this read times out).
  auto read_head = [](int fd) {
    timeval tv{60, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string got;
    char c = 0;
    while (got.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) got += c;
    return got;
  };
  const std::string body = R"({"items":[{"id":9,"vector":[1,2,3,4]}]})";
  int fd = Dial(http);
  ASSERT_GE(fd, 0);
  const std::string h = head(body.size());
  ::send(fd, h.data(), h.size(), MSG_NOSIGNAL);
  EXPECT_TRUE(read_head(fd).starts_with("HTTP/1.1 100 Continue\r\n"));
  ::send(fd, body.data(), body.size(), MSG_NOSIGNAL);
  const std::string answer = ReadAll(fd);
  ::close(fd);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer;
  EXPECT_NE(answer.find("\"changed\":1"), std::string::npos) << answer;

  fd = Dial(http);
  ASSERT_GE(fd, 0);
  const std::string big = head(size_t{2} << 20);
  ::send(fd, big.data(), big.size(), MSG_NOSIGNAL);
  const std::string refused = read_head(fd);
  ::close(fd);
  EXPECT_TRUE(refused.starts_with("HTTP/1.1 413")) << refused;
}

// /livez and /readyz answer without an API key and say nothing of the data; /readyz is 503
// while the data root loads (every other call is UNAVAILABLE meanwhile), then 200.
TEST_F(ServerTest, ProbesAnswerWithoutAKeyAndReadinessWaitsForTheLoad) {
  StartServer("rw-secret", "", nullptr, /*load_root=*/false);
  const uint16_t http = server_->http_port();
  HttpAnswer live = Http(http, "GET", "/livez");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, R"({"live":true})");
  HttpAnswer loading = Http(http, "GET", "/readyz");
  EXPECT_EQ(loading.status, 503);
  EXPECT_EQ(loading.body, R"({"ready":false,"reason":"loading"})");
  HttpAnswer early = Http(http, "GET", "/v1/collections", "", "rw-secret");
  EXPECT_EQ(early.status, 503) << early.body;
  EXPECT_NE(early.body.find("loading"), std::string::npos) << early.body;
  ASSERT_TRUE(root_->Load().ok());
  EXPECT_EQ(root_->Load().code(), StatusCode::kFailedPrecondition);
  HttpAnswer ready = Http(http, "GET", "/readyz?verbose=1");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, R"({"ready":true})");
  // Everything else stays behind the key.
  EXPECT_EQ(Http(http, "GET", "/healthz").status, 401);
  EXPECT_EQ(Http(http, "GET", "/metrics").status, 401);
  EXPECT_EQ(Http(http, "GET", "/v1/collections", "", "rw-secret").status, 200);
  EXPECT_EQ(Http(http, "POST", "/readyz").status, 404);  // a probe is a GET
}

TEST_F(ServerTest, ApiKeysGuardEveryListener) {
  StartServer("rw-secret", "ro-secret");
  const uint16_t http = server_->http_port();
  EXPECT_EQ(Http(http, "GET", "/v1/collections").status, 401);
  EXPECT_EQ(Http(http, "GET", "/v1/collections", "", "wrong").status, 401);
  EXPECT_EQ(Http(http, "GET", "/metrics").status, 401);
  EXPECT_EQ(Http(http, "GET", "/metrics", "", "ro-secret").status, 200);
  EXPECT_EQ(Http(http, "POST", "/v1/collections", kSchemaJson, "ro-secret").status, 403);
  EXPECT_EQ(Http(http, "POST", "/v1/collections", kSchemaJson, "rw-secret").status, 200);
  EXPECT_EQ(Http(http, "GET", "/v1/collections/m", "", "ro-secret").status, 200);

  auto none = Connect();
  EXPECT_EQ(none->ListCollections().status().code(), StatusCode::kUnauthenticated);
  auto ro = Connect("ro-secret");
  EXPECT_TRUE(ro->ListCollections().ok());
  EXPECT_EQ(ro->Upsert("m", Items(3)).status().code(), StatusCode::kPermissionDenied);
  auto rw = Connect("rw-secret");
  EXPECT_TRUE(rw->Upsert("m", Items(3)).ok());
  EXPECT_TRUE(KeyEquals("abc", "abc"));
  EXPECT_FALSE(KeyEquals("abc", "abd"));
  EXPECT_FALSE(KeyEquals("abc", "abcd"));
  EXPECT_FALSE(KeyEquals("", "abc"));
}

TEST_F(ServerTest, ClientReportsAnUnreachableServerAndRetriesIdempotentCalls) {
  StartServer();
  client::ClientOptions o;
  o.port = server_->binary_port();
  o.deadline = std::chrono::milliseconds(3000);
  auto client = client::Client::Connect(o);
  ASSERT_TRUE(client.ok());
  const uint16_t port = server_->binary_port();
  server_->Stop();
  server_.reset();
  // Nothing listens: a transport error, after the retries, well within the deadline.
  auto r = (*client)->Health();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status();
  client::ClientOptions gone = o;
  gone.port = port;
  EXPECT_EQ(client::Client::Connect(gone).status().code(), StatusCode::kUnavailable);
}

// Pipelined frames arriving in every split (one byte at a time, many in one write) are each
// answered once, by id; the binary protocol also works over a Unix-domain socket.
TEST_F(ServerTest, PipelinedFramesInAnySplitAndUnixSocket) {
  const std::string sock = dir_.path() + "/quiver.sock";
  StartServer("", "", [&](ServerOptions& o) { o.binary_unix_path = sock; });
  ASSERT_EQ(Http(server_->http_port(), "POST", "/v1/collections", kSchemaJson).status, 200);
  auto client = Connect();
  ASSERT_TRUE(client->Upsert("m", Items(40)).ok());

  std::string burst;
  for (uint64_t id = 1; id <= 20; ++id)
    burst += EncodeRequestFrame(id, "", GetCall{"m", {id, id + 100}});
  int fd = Dial(server_->binary_port());
  ASSERT_GE(fd, 0);
  // The first half a byte per write, the rest in one write.
  for (size_t i = 0; i < burst.size() / 2; ++i)
    ASSERT_EQ(::send(fd, &burst[i], 1, MSG_NOSIGNAL), 1);
  ASSERT_EQ(
      ::send(fd, burst.data() + burst.size() / 2, burst.size() - burst.size() / 2, MSG_NOSIGNAL),
      ssize_t(burst.size() - burst.size() / 2));
  std::string buf;
  std::map<uint64_t, DecodedResponse> answers;
  char chunk[4096];
  while (answers.size() < 20) {
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    ASSERT_GT(n, 0);
    buf.append(chunk, size_t(n));
    while (buf.size() >= 4 && buf.size() >= 4 + DecodeFrameLength(buf.data())) {
      auto r = DecodeResponse(std::string_view(buf).substr(4, DecodeFrameLength(buf.data())));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_TRUE(answers.emplace(r->id, std::move(*r)).second) << "id answered twice";
      buf.erase(0, 4 + DecodeFrameLength(buf.data()));
    }
  }
  ::close(fd);
  for (uint64_t id = 1; id <= 20; ++id) {
    ASSERT_TRUE(answers.count(id)) << id;
    const auto* got = std::get_if<GetResult>(&answers[id].reply.body);
    ASSERT_NE(got, nullptr) << id;
    ASSERT_EQ(got->items.size(), 2u) << id;
    ASSERT_TRUE(got->items[0].has_value()) << id;
    EXPECT_EQ(got->items[0]->id, id);
    EXPECT_FALSE(got->items[1].has_value()) << id;  // id + 100 does not exist
  }

  client::ClientOptions uo;
  uo.unix_path = sock;
  auto local = client::Client::Connect(uo);
  ASSERT_TRUE(local.ok()) << local.status();
  std::vector<float> v = {1, 2, 3, 4};
  auto over_unix = (*local)->Search("m", v, {.k = 5});
  auto over_tcp = client->Search("m", v, {.k = 5});
  ASSERT_TRUE(over_unix.ok()) << over_unix.status();
  ASSERT_TRUE(over_tcp.ok());
  ASSERT_EQ(over_unix->size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ((*over_unix)[i].id, (*over_tcp)[i].id);
  uo.unix_path = dir_.path() + "/nothing.sock";
  EXPECT_EQ(client::Client::Connect(uo).status().code(), StatusCode::kUnavailable);
}

// A connection is closed once idle for the idle timeout, not while it keeps sending. No fixed
// waits: the busy phase sends back to back, and a close during it fails the test unless the
// client itself paused for about a timeout (a starved thread on a saturated machine); the idle
// phase blocks until the server closes and checks that it waited the timeout.
TEST_F(ServerTest, IdleConnectionsAreClosedBusyOnesAreNot) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kIdle = std::chrono::milliseconds(1000);
  StartServer("", "", [&](ServerOptions& o) { o.idle_timeout = kIdle; });
  int fd = Dial(server_->binary_port());
  ASSERT_GE(fd, 0);
  const std::string health = EncodeRequestFrame(1, "", HealthCall{});
  char chunk[4096];
  const Clock::time_point busy_until = Clock::now() + 3 * kIdle;
  Clock::time_point last_send = Clock::now();
  Clock::duration longest_pause{};
  int requests = 0;
  while (Clock::now() < busy_until) {
    const Clock::time_point now = Clock::now();
    longest_pause = std::max(longest_pause, now - last_send);
    last_send = now;
    ASSERT_EQ(::send(fd, health.data(), health.size(), MSG_NOSIGNAL), ssize_t(health.size()))
        << requests;
    if (::recv(fd, chunk, sizeof(chunk), 0) <= 0) {
      ASSERT_GE(std::max<Clock::duration>(longest_pause, Clock::now() - last_send), kIdle / 2)
          << "closed while busy, request " << requests
          << "; the longest pause between requests was "
          << std::chrono::duration_cast<std::chrono::milliseconds>(longest_pause).count() << " ms";
      GTEST_SKIP() << "the client was starved for about an idle timeout; nothing to judge";
    }
    ++requests;
  }
  EXPECT_GT(requests, 1);
  EXPECT_EQ(::recv(fd, chunk, sizeof(chunk), 0), 0) << "an idle connection was left open";
  EXPECT_GE(Clock::now() - last_send, kIdle) << "closed before the idle timeout";
  ::close(fd);
}

// The client replaces a pooled connection the server closed for idleness before it writes a
// request to it: the request after a quiet spell costs no attempt (max_attempts 1 here). The
// test waits for the server's close (its counter), never for a time. The idle timeout must be
// longer than a connection's opening plus its first request: it is sized from that span,
// measured first on a server without the short timeout.
TEST_F(ServerTest, AClientReconnectsByItselfAfterTheServerClosedItsIdleConnection) {
  StartServer();
  auto span = std::chrono::steady_clock::duration::zero();
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<client::Client> probe = Connect();
    ASSERT_NE(probe, nullptr);
    ASSERT_TRUE(probe->Health().ok());
    span = std::max(span, std::chrono::steady_clock::now() - t0);
  }
  server_->Stop();
  server_.reset();
  root_.reset();
  const auto idle =
      std::max<std::chrono::steady_clock::duration>(std::chrono::milliseconds(200), 50 * span);
  StartServer("", "", [&](ServerOptions& o) {
    o.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(idle);
  });
  client::ClientOptions o;
  o.port = server_->binary_port();
  o.pool_size = 1;
  o.max_attempts = 1;
  auto c = client::Client::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status();
  for (int round = 0; round < 2; ++round) {
    const uint64_t closed = server_->idle_closed();
    auto health = (*c)->Health();
    ASSERT_TRUE(health.ok()) << "round " << round << ": " << health.status();
    // Until the server has closed the pooled connection (an event, however slow the machine).
    const auto until = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (server_->idle_closed() == closed && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_GT(server_->idle_closed(), closed) << "the server never closed the idle connection";
  }
  auto after = (*c)->Health();
  EXPECT_TRUE(after.ok()) << after.status();
  const testing::HttpAnswer metrics = testing::Http(server_->http_port(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("quiver_binary_idle_closed_total " +
                              std::to_string(server_->idle_closed())),
            std::string::npos)
      << metrics.body;
}

}  // namespace
}  // namespace quiver::net
