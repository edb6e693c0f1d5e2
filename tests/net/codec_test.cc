#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "base/coding.h"
#include "net/json_api.h"
#include "net/schema/quiver_generated.h"
#include "net/schema/wire_codec.h"

namespace quiver::net {
namespace {

ItemRecord SampleItem(uint64_t id) {
  ItemRecord item;
  item.id = id;
  item.vector = {0.1f, -2.5f, 1e-20f, 3.0f};
  item.cluster = 2;
  item.topic_weights = {0.5f, 0.5f};
  item.category = -7;
  item.tags = {1, 2};
  item.timestamp = 1700000000123;
  item.payload = R"({"title":"a \"quoted\" name"})";
  return item;
}

CollectionSchema SampleSchema() {
  CollectionSchema s;
  s.name = "movies";
  s.dim = 4;
  s.metric = Metric::kCosine;
  s.index.type = IndexSpec::Type::kIvfPq;
  s.index.ivf_nlist = 64;
  s.index.ivf_nbits = 4;
  s.index.ivf_refine_int8 = true;
  s.clusters = 3;
  s.topics = 2;
  s.max_history = 10;
  s.shards = 3;
  return s;
}

// Every call survives encode -> decode through the binary codec unchanged.
TEST(WireCodecTest, EveryCallRoundTrips) {
  std::vector<Call> calls = {
      CreateCollectionCall{SampleSchema()},
      DropCollectionCall{"a"},
      ListCollectionsCall{},
      DescribeCollectionCall{"b"},
      UpsertCall{"c", {SampleItem(1), SampleItem(2)}},
      DeleteCall{"c", {1, 2, 3}},
      GetCall{"c", {4}},
      PutUsersCall{"c", {UserRecord{9, {1, 2, 3, 4}, {{1, 10}, {2, 5}}}}},
      GetUserCall{"c", 9},
      AddEventsCall{"c", {Event{1, 2, 3}, Event{4, 5, 6}}},
      SearchCall{"c", {.vectors = {{1, 2, 3, 4}}, .k = 25, .ef = 100, .nprobe = 8, .refine = 3}},
      SnapshotCall{""},
      ReloadCall{"v2"},
      RollbackCall{},
      ListVersionsCall{},
      HealthCall{},
      RunPluginCall{"c", "i2i_knn", R"({"k":50})", true},
      GetListCall{"c", "i2i", 77},
      ListListsCall{"c"},
      ListPluginsCall{},
      ExportCall{"c", {0, 7}},
      ReadExportCall{"00ff", "index/00000000000000000012/global.qvi", uint64_t{5} << 32, 4096},
      EndExportCall{"00ff"},
      IntentCall{"c", {{1, 2}, {3, 4}}, {1, 3}},
      ClusterInfoCall{},
      AssignShardCall{1, {"a0", "c0"}},
      SearchBatchCall{{SearchCall{"c", {.vectors = {{1, 2}}, .k = 5}},
                       SearchCall{"c", {.vectors = {{3, 4}}, .k = 7}, true}}},
      CountCall{"c", Filter{Filter::Op::kIn, Filter::Field::kTag, {1, 2}}},
      ScrollCall{"c", uint64_t{1} << 40, 250,
                 Filter{Filter::Op::kEq, Filter::Field::kCategory, {3}}, false, true}};
  ASSERT_EQ(calls.size(), kCallKinds);
  // The decoded call equals the one sent (the loop below checks the bytes of every kind).
  auto same = [](const auto& sent) {
    using T = std::decay_t<decltype(sent)>;
    auto back = DecodeRequest(EncodeRequestFrame(1, "", sent).substr(kFrameHeaderBytes));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(std::get<T>(back->call) == sent);
  };
  same(std::get<SearchBatchCall>(calls[calls.size() - 3]));
  same(std::get<CountCall>(calls[calls.size() - 2]));
  same(std::get<ScrollCall>(calls.back()));
  same(CountCall{"c", std::nullopt});
  same(ScrollCall{"c"});
  for (const Call& call : calls) {
    const std::string frame = EncodeRequestFrame(77, "secret", call);
    ASSERT_EQ(DecodeFrameLength(frame.data()), frame.size() - kFrameHeaderBytes);
    auto back = DecodeRequest(std::string_view(frame).substr(kFrameHeaderBytes));
    ASSERT_TRUE(back.ok()) << CallName(call) << ": " << back.status();
    EXPECT_EQ(back->id, 77u);
    EXPECT_EQ(back->api_key, "secret");
    ASSERT_EQ(back->call.index(), call.index()) << CallName(call);
    // Re-encoding the decoded call gives the same bytes: nothing was lost or changed.
    EXPECT_EQ(EncodeRequestFrame(77, "secret", back->call), frame) << CallName(call);
  }
  // Cluster collection versions: the collection, the build and its watermark (set or not).
  for (const Call& call : std::vector<Call>{ReloadCall{"v3", "movies", "/builds/v3", 1234},
                                            ReloadCall{"v3", "movies", "/builds/v3", 0},
                                            ReloadCall{"v3", "movies", "/builds/v3", std::nullopt},
                                            RollbackCall{"movies"}, ListVersionsCall{"movies"}}) {
    const std::string frame = EncodeRequestFrame(3, "", call);
    auto back = DecodeRequest(std::string_view(frame).substr(kFrameHeaderBytes));
    ASSERT_TRUE(back.ok()) << CallName(call) << ": " << back.status();
    EXPECT_EQ(EncodeRequestFrame(3, "", back->call), frame) << CallName(call);
    if (const auto* r = std::get_if<ReloadCall>(&call)) {
      EXPECT_EQ(std::get<ReloadCall>(back->call), *r);
    } else if (const auto* rb = std::get_if<RollbackCall>(&call)) {
      EXPECT_EQ(std::get<RollbackCall>(back->call).collection, rb->collection);
    } else {
      EXPECT_EQ(std::get<ListVersionsCall>(back->call).collection, "movies");
    }
  }
  auto up = DecodeRequest(
      EncodeRequestFrame(1, "", UpsertCall{"c", {SampleItem(5)}}).substr(kFrameHeaderBytes));
  EXPECT_EQ(std::get<UpsertCall>(up->call).items[0], SampleItem(5));
  // A multi-vector quota search keeps every field.
  SearchCall multi{"c",
                   {.vectors = {{1, 2}, {3, 4}},
                    .aggregate = Aggregate::kWeighted,
                    .weights = {0.5f, 2.0f},
                    .k = 20,
                    .quota = QuotaSpec{{0.7f, 0.3f}, 0.5f, 100, 2.0f}}};
  auto back = DecodeRequest(EncodeRequestFrame(2, "", multi).substr(kFrameHeaderBytes));
  ASSERT_TRUE(back.ok()) << back.status();
  const auto& m = std::get<SearchCall>(back->call).query;
  EXPECT_EQ(m.vectors, multi.query.vectors);
  EXPECT_EQ(m.aggregate, Aggregate::kWeighted);
  EXPECT_EQ(m.weights, multi.query.weights);
  EXPECT_EQ(m.quota, multi.query.quota);
  EXPECT_EQ(std::get<SearchCall>(back->call), multi);
  // p "history": the user and the half-life too (and an intent call asking for the weights).
  SearchCall history{"c", {.vectors = {{1, 2}}, .quota = QuotaSpec{{}, 1.0f, 50, 1.0f, 42, 3600}}};
  auto hb = DecodeRequest(EncodeRequestFrame(3, "", history).substr(kFrameHeaderBytes));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(std::get<SearchCall>(hb->call), history);
  SearchCall learned{"c",
                     {.vectors = {{1, 2}}, .quota = QuotaSpec{{}, 1.5f, 50, 1.0f, 42, 0, true}}};
  auto lb = DecodeRequest(EncodeRequestFrame(3, "", learned).substr(kFrameHeaderBytes));
  ASSERT_TRUE(lb.ok()) << lb.status();
  EXPECT_EQ(std::get<SearchCall>(lb->call), learned);
  EXPECT_TRUE(std::get<SearchCall>(lb->call).query.quota->learned);
  IntentCall weights{"c", {}, {1}, 42, 3600};
  auto ib = DecodeRequest(EncodeRequestFrame(4, "", weights).substr(kFrameHeaderBytes));
  ASSERT_TRUE(ib.ok()) << ib.status();
  EXPECT_EQ(std::get<IntentCall>(ib->call).user, std::optional<uint64_t>(42));
  EXPECT_EQ(std::get<IntentCall>(ib->call).half_life, 3600);
  // A filter tree survives the wire.
  Filter f{Filter::Op::kAnd,
           Filter::Field::kCategory,
           {},
           INT64_MIN,
           INT64_MAX,
           {Filter{Filter::Op::kIn, Filter::Field::kTag, {1, 2}},
            Filter{Filter::Op::kNot,
                   Filter::Field::kCategory,
                   {},
                   INT64_MIN,
                   INT64_MAX,
                   {Filter{Filter::Op::kRange, Filter::Field::kTimestamp, {}, 10, 20}}}}};
  SearchCall filtered{"c", {.vectors = {{1, 2}}, .k = 5}};
  filtered.query.filter = f;
  auto fb = DecodeRequest(EncodeRequestFrame(3, "", filtered).substr(kFrameHeaderBytes));
  ASSERT_TRUE(fb.ok()) << fb.status();
  EXPECT_EQ(std::get<SearchCall>(fb->call).query.filter, f);
  // Excluded ids and an id filter, both ways.
  filtered.query.exclude = {7, 3, UINT64_MAX};
  filtered.query.filter = Filter{Filter::Op::kIn, Filter::Field::kId, {-1, 5}};
  fb = DecodeRequest(EncodeRequestFrame(3, "", filtered).substr(kFrameHeaderBytes));
  ASSERT_TRUE(fb.ok()) << fb.status();
  EXPECT_EQ(std::get<SearchCall>(fb->call), filtered);
  auto ej = DecodeHttpCall(
      "POST", "/v1/collections/c/search",
      R"({"vector":[1,2],"k":5,"exclude":[7,3,18446744073709551615],"filter":{"in":{"id":[18446744073709551615,5]}}})",
      32);
  ASSERT_TRUE(ej.ok()) << ej.status();
  EXPECT_EQ(std::get<SearchCall>(*ej), filtered);
  // Cluster mode's read-your-writes sequence, both ways.
  filtered.min_seq = 123456789012;
  fb = DecodeRequest(EncodeRequestFrame(3, "", filtered).substr(kFrameHeaderBytes));
  ASSERT_TRUE(fb.ok()) << fb.status();
  EXPECT_EQ(std::get<SearchCall>(fb->call), filtered);
  ej = DecodeHttpCall(
      "POST", "/v1/collections/c/search",
      R"({"vector":[1,2],"k":5,"exclude":[7,3,18446744073709551615],"filter":{"in":{"id":[18446744073709551615,5]}},"min_seq":123456789012})",
      32);
  ASSERT_TRUE(ej.ok()) << ej.status();
  EXPECT_EQ(std::get<SearchCall>(*ej), filtered);
  EXPECT_FALSE(
      DecodeHttpCall("POST", "/v1/collections/c/search", R"({"vector":[1],"min_seq":-1})", 32)
          .ok());
  filtered.min_seq = 0;
  EXPECT_FALSE(
      DecodeHttpCall("POST", "/v1/collections/c/search", R"({"vector":[1],"exclude":[-1]})", 32)
          .ok());
  SearchCall diverse{"c", {.vectors = {{1, 2}}, .k = 5}};
  diverse.query.rerank = Rerank{0.3f, 50, 2, 4, 0.05f};
  auto db = DecodeRequest(EncodeRequestFrame(4, "", diverse).substr(kFrameHeaderBytes));
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(std::get<SearchCall>(db->call).query.rerank, diverse.query.rerank);
  auto dj = DecodeHttpCall(
      "POST", "/v1/collections/m/search",
      R"({"vector":[1,2],"rerank":{"mmr":{"lambda":0.3,"window":50},"max_consecutive_category":2,"per_category_cap":4,"category_diversity":0.05}})",
      32);
  ASSERT_TRUE(dj.ok()) << dj.status();
  EXPECT_EQ(std::get<SearchCall>(*dj).query.rerank, diverse.query.rerank);
  // MVKE parameters, binary and JSON.
  SearchCall mvke{"c", {.k = 7}};
  mvke.query.mvke = MvkeSpec{{{1, 2}, {3, 4}, {5, 6}}, MvkeStrategy::kConcat, 50, 400};
  auto mb = DecodeRequest(EncodeRequestFrame(5, "", mvke).substr(kFrameHeaderBytes));
  ASSERT_TRUE(mb.ok()) << mb.status();
  EXPECT_EQ(std::get<SearchCall>(mb->call).query.mvke, mvke.query.mvke);
  auto mj = DecodeHttpCall(
      "POST", "/v1/collections/m/search",
      R"({"k":7,"mvke":{"user_vectors":[[1,2],[3,4],[5,6]],"strategy":"concat","candidates":50,"max_candidates":400}})",
      32);
  ASSERT_TRUE(mj.ok()) << mj.status();
  EXPECT_EQ(std::get<SearchCall>(*mj).query.mvke, mvke.query.mvke);
  mvke.query.mvke->strategy = MvkeStrategy::kWeightedScan;
  mb = DecodeRequest(EncodeRequestFrame(5, "", mvke).substr(kFrameHeaderBytes));
  ASSERT_TRUE(mb.ok()) << mb.status();
  EXPECT_EQ(std::get<SearchCall>(mb->call).query.mvke, mvke.query.mvke);
  mj = DecodeHttpCall(
      "POST", "/v1/collections/m/search",
      R"({"k":7,"mvke":{"user_vectors":[[1,2],[3,4],[5,6]],"strategy":"weighted_scan","candidates":50,"max_candidates":400}})",
      32);
  ASSERT_TRUE(mj.ok()) << mj.status();
  EXPECT_EQ(std::get<SearchCall>(*mj).query.mvke, mvke.query.mvke);
  EXPECT_EQ(DecodeHttpCall("POST", "/v1/collections/m/search",
                           R"({"mvke":{"user_vectors":[[1]],"strategy":"best"}})", 32)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // Freshness, binary and JSON; durations as integers or with a unit.
  SearchCall fresh{"c", {.vectors = {{1, 2}}, .k = 5}};
  fresh.query.fresh = Fresh{int64_t{6} * 3600, 1700000000, 0.25f, 1800, int64_t{2} * 86400, 40};
  auto frb = DecodeRequest(EncodeRequestFrame(6, "", fresh).substr(kFrameHeaderBytes));
  ASSERT_TRUE(frb.ok()) << frb.status();
  EXPECT_EQ(std::get<SearchCall>(frb->call).query.fresh, fresh.query.fresh);
  EXPECT_FALSE(std::get<SearchCall>(frb->call).with_payload);
  // Channels, binary and JSON.
  SearchCall chc{"c", {.k = 30}};
  chc.query.channels = Channels{};
  chc.query.channels->user = 42;
  chc.query.channels->seed_items = {1, 2};
  chc.query.channels->u2u2i = false;
  chc.query.channels->per_seed = 7;
  chc.query.channels->i2i_kind = "i2i_cf";
  chc.query.channels->w_div = 0.3f;
  chc.query.channels->channel_weights = {1.0f, 0.5f, 0.25f};
  auto chb = DecodeRequest(EncodeRequestFrame(8, "", chc).substr(kFrameHeaderBytes));
  ASSERT_TRUE(chb.ok()) << chb.status();
  EXPECT_EQ(std::get<SearchCall>(chb->call).query.channels, chc.query.channels);
  auto chj =
      DecodeHttpCall("POST", "/v1/collections/m/search",
                     R"({"k":30,"channels":{"user":42,"seed_items":[1,2],"u2u2i":false,"per_seed":7,
                                "i2i_kind":"i2i_cf","weights":{"div":0.3,"u2i2i":0.5,"u2u2i":0.25}}})",
                     32);
  ASSERT_TRUE(chj.ok()) << chj.status();
  EXPECT_EQ(std::get<SearchCall>(*chj).query.channels, chc.query.channels);
  SearchCall no_user{"c", {.k = 3}};
  no_user.query.channels = Channels{};
  chb = DecodeRequest(EncodeRequestFrame(9, "", no_user).substr(kFrameHeaderBytes));
  ASSERT_TRUE(chb.ok());
  EXPECT_EQ(std::get<SearchCall>(chb->call).query.channels, no_user.query.channels);
  EXPECT_EQ(DecodeHttpCall("POST", "/v1/collections/m/search",
                           R"({"channels":{"weights":{"mic":1}}})", 32)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  fresh.with_payload = true;
  frb = DecodeRequest(EncodeRequestFrame(7, "", fresh).substr(kFrameHeaderBytes));
  ASSERT_TRUE(frb.ok()) << frb.status();
  EXPECT_TRUE(std::get<SearchCall>(frb->call).with_payload);
  auto fj = DecodeHttpCall(
      "POST", "/v1/collections/m/search",
      R"({"vector":[1,2],"k":5,"fresh":{"pool":"6h","now":1700000000,"boost":0.25,"half_life":"30m","horizon":"2d","window":40}})",
      32);
  ASSERT_TRUE(fj.ok()) << fj.status();
  EXPECT_EQ(std::get<SearchCall>(*fj).query.fresh, fresh.query.fresh);
  auto fi = DecodeHttpCall("POST", "/v1/collections/m/search",
                           R"({"vector":[1,2],"fresh":{"pool":90,"half_life":"45s"}})", 32);
  ASSERT_TRUE(fi.ok()) << fi.status();
  EXPECT_EQ(std::get<SearchCall>(*fi).query.fresh->pool, 90);
  EXPECT_EQ(std::get<SearchCall>(*fi).query.fresh->half_life, 45);
  for (const char* body :
       {R"({"vector":[1],"fresh":{"pool":"6x"}})", R"({"vector":[1],"fresh":{"pool":"h"}})",
        R"({"vector":[1],"fresh":{"pool":"-6h"}})",
        R"({"vector":[1],"fresh":{"pool":"99999999999999999999d"}})",
        R"({"vector":[1],"fresh":{"pool":1.5}})", R"({"vector":[1],"fresh":{"age":3}})",
        R"({"vector":[1],"fresh":[1]})"}) {
    auto bad = DecodeHttpCall("POST", "/v1/collections/m/search", body, 32);
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << body;
  }
  EXPECT_NE(DecodeHttpCall("POST", "/v1/collections/m/search",
                           R"({"vector":[1],"fresh":{"pool":"6x"}})", 32)
                .status()
                .message()
                .find("not a duration"),
            std::string::npos);
}

TEST(WireCodecTest, EveryReplyRoundTrips) {
  CollectionInfo info{3, SampleSchema(), 10, 4, 2, 12345, false};
  std::vector<Reply> replies = {
      Reply{Status::Ok(), std::monostate{}},
      Reply{Status::Ok(), info},
      Reply{Status::Ok(), std::vector<CollectionInfo>{info, info}},
      Reply{Status::Ok(), WriteResult{5, 6}},
      Reply{Status::Ok(), GetResult{{SampleItem(1), std::nullopt}}},
      Reply{Status::Ok(), UserResult{UserRecord{1, {}, {{2, 3}}}}},
      Reply{Status::Ok(), UserResult{std::nullopt}},
      Reply{Status::Ok(), SearchResult{{{1, 0.5f}, {2, -1.25f}}}},
      Reply{Status::Ok(), SearchResult{{{1, 0.5f}, {2, -1.25f}}, {0, 1}, {3, -1}, {1, 1}, {1, 1}}},
      Reply{Status::Ok(),
            SearchResult{{{1, 0.5f}, {2, -1.25f}}, {}, {}, {}, {}, {R"({"title":"x"})", ""}}},
      Reply{Status::Ok(),
            SearchResult{{{1, 0.5f}, {2, -1.25f}}, {0, 0}, {-1, -1}, {}, {}, {}, {1, 6}}},
      Reply{Status::Ok(), SearchResult{{{1, 0.5f}}, {}, {}, {}, {}, {}, {}, 9000000000}},
      Reply{Status::Ok(), VersionsInfo{"v2", "initial", {"initial", "v2"}}},
      Reply{Status::Ok(),
            ClusterInfo{{{"a0", "10.0.0.1", 7701, {0}, {0}}, {"c0", "10.0.0.2", 7701, {}, {1}}},
                        {{0, {"a0"}}, {1, {"c0", "b1"}}}}},
      Reply{Status::Ok(), VersionsInfo{"v2",
                                       "initial",
                                       {"v2", "initial", "v3"},
                                       "v3",
                                       {{"v2", 0, {"a0", "b0"}}, {"v3", 1, {}}}}},
      Reply{Status::Ok(), HealthResult{"serving", "0.1.0"}},
      Reply{Status::Ok(), PluginRunResult{{"i2i", "u2u"}, 300, 2, true}},
      Reply{Status::Ok(), ListResult{std::vector<Hit>{{4, 0.25f}, {9, -1.5f}}}},
      Reply{Status::Ok(), ListResult{std::vector<Hit>{}}},
      Reply{Status::Ok(), ListResult{std::nullopt}},
      Reply{Status::Ok(), ListInfosResult{{ListInfo{"i2i", "i2i_knn", R"({"k":50})", 300, 12}}}},
      Reply{Status::Ok(), PluginsResult{{"i2i_knn", "same_tag"}}},
      Reply{Status::Ok(), ExportResult{"00ff",
                                       77,
                                       {{0, 12}, {3, uint64_t{1} << 40}},
                                       {{"records", 1234, 0xdeadbeef}, {"index/1/a.qvi", 0, 7}}}},
      Reply{Status::Ok(), ExportChunk{std::string("\0\xff binary\n", 10)}},
      Reply{Status::Ok(), ExportChunk{}},
      Reply{Status::Ok(), IntentResult{{0.5, -INFINITY, -2.25}}},
      Reply{NotFoundError("no collection named 'x'"), {}},
      Reply{Status::Ok(),
            SearchBatchResult{{SearchOutcome{Status::Ok(), SearchResult{{{1, 0.5f}}, {0}}},
                               SearchOutcome{InvalidArgumentError("k must be at most 100"), {}},
                               SearchOutcome{Status::Ok(), SearchResult{}}}}},
      Reply{Status::Ok(), SearchBatchResult{}},
      Reply{Status::Ok(), CountResult{uint64_t{1} << 33}},
      Reply{Status::Ok(), ScrollResult{{SampleItem(1), SampleItem(2)}, 3}},
      Reply{Status::Ok(), ScrollResult{{}, std::nullopt}},
  };
  for (const Reply& r : replies) {
    const std::string frame = EncodeResponseFrame(9, r);
    auto back = DecodeResponse(std::string_view(frame).substr(kFrameHeaderBytes));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->id, 9u);
    EXPECT_EQ(back->reply.status, r.status);
    EXPECT_TRUE(back->reply.body == r.body) << "body index " << r.body.index();
  }
}

TEST(WireCodecTest, GarbageAndTruncatedBuffersAreRejectedNotRead) {
  const std::string frame =
      EncodeRequestFrame(1, "k", UpsertCall{"c", {SampleItem(1), SampleItem(2)}});
  const std::string body = frame.substr(kFrameHeaderBytes);
  for (size_t cut = 0; cut < body.size(); cut += 7) {
    auto r = DecodeRequest(std::string_view(body).substr(0, cut));
    EXPECT_FALSE(r.ok() && cut < body.size() / 2) << cut;
  }
  std::mt19937 rng(3);
  int rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string bad = body;
    for (int k = 0; k < 4; ++k) bad[rng() % bad.size()] = char(rng());
    auto r = DecodeRequest(bad);  // must not crash or read out of bounds (ASan job)
    rejected += !r.ok();
  }
  EXPECT_GT(rejected, 0);
  std::string random(300, '\0');
  for (char& c : random) c = char(rng());
  EXPECT_EQ(DecodeRequest(random).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeRequest("").status().code(), StatusCode::kInvalidArgument);
}

// A filter nested too deep for the Verifier is refused saying so, not as an invalid buffer;
// one within the Verifier's depth decodes (the query validation then names the filter limit).
TEST(WireCodecTest, DeeplyNestedFilterIsRefusedSayingSo) {
  auto nested = [](size_t depth) {
    Filter f{Filter::Op::kEq, Filter::Field::kCategory, {1}};
    for (size_t i = 1; i < depth; ++i) f = Filter{Filter::Op::kNot, {}, {}, 0, 0, {std::move(f)}};
    SearchCall c;
    c.collection = "c";
    c.query.vectors = {{1, 2}};
    c.query.filter = std::move(f);
    return EncodeRequestFrame(1, "", c).substr(kFrameHeaderBytes);
  };
  auto shallow = DecodeRequest(nested(17));
  ASSERT_TRUE(shallow.ok()) << shallow.status();
  for (size_t depth : {40, 2000}) {
    auto deep = DecodeRequest(nested(depth));
    EXPECT_EQ(deep.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(deep.status().message().find("nests tables deeper than 32"), std::string::npos)
        << depth << ": " << deep.status();
  }
}

// Found by frame_fuzzer: a union type without its value passes the Verifier.
TEST(WireCodecTest, UnionTypeWithoutValueIsRejected) {
  for (auto type :
       {wire::RequestBody::Upsert, wire::RequestBody::Search, wire::RequestBody::Health}) {
    flatbuffers::FlatBufferBuilder b;
    b.Finish(wire::CreateRequest(b, 1, 0, type, 0));
    auto r = DecodeRequest(
        std::string_view(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  flatbuffers::FlatBufferBuilder b;
  b.Finish(wire::CreateResponse(b, 1, 0, wire::ResponseBody::SearchResult, 0));
  auto r = DecodeResponse(
      std::string_view(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(JsonApiTest, RoutesDecodeIntoCalls) {
  auto c = DecodeHttpCall(
      "POST", "/v1/collections",
      R"({"name":"movies","dim":4,"metric":"cosine","clusters":3,"topics":2,"max_history":10,"shards":3,
                              "index":{"type":"ivf_pq","nlist":64,"nbits":4,"refine_int8":true}})",
      32);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(std::get<CreateCollectionCall>(*c).schema, SampleSchema());
  auto up = DecodeHttpCall(
      "POST", "/v1/collections/m/items",
      R"({"items":[{"id":1,"vector":[0.1,-2.5,1e-20,3],"cluster":2,"topics":[0.5,0.5],
                               "category":-7,"tags":[1,2],"timestamp":1700000000123,
                               "payload":{"title":"a \"quoted\" name"}}]})",
      32);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(std::get<UpsertCall>(*up).items[0], SampleItem(1));
  auto s = DecodeHttpCall("POST", "/v1/collections/m/search?trace=0",
                          R"({"vector":[1,2],"k":5,"params":{"ef":80}})", 32);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(std::get<SearchCall>(*s).query.k, 5u);
  EXPECT_EQ(std::get<SearchCall>(*s).query.ef, 80u);
  auto q = DecodeHttpCall("POST", "/v1/collections/m/search",
                          R"({"vectors":[[1,2],[3,4]],"aggregate":"weighted","weights":[1,0.5],
                              "quota":{"p":"auto","a":0.5,"total":200,"temperature":0.1}})",
                          32);
  ASSERT_TRUE(q.ok()) << q.status();
  const auto& qc = std::get<SearchCall>(*q).query;
  EXPECT_EQ(qc.vectors.size(), 2u);
  EXPECT_EQ(qc.aggregate, Aggregate::kWeighted);
  ASSERT_TRUE(qc.quota.has_value());
  EXPECT_TRUE(qc.quota->p.empty());
  EXPECT_EQ(qc.quota->total, 200u);
  EXPECT_FLOAT_EQ(qc.quota->temperature, 0.1f);
  auto hq = DecodeHttpCall(
      "POST", "/v1/collections/m/search",
      R"({"vector":[1,2],"quota":{"p":"history","user":7,"half_life":"30d","total":100}})", 32);
  ASSERT_TRUE(hq.ok()) << hq.status();
  EXPECT_EQ(std::get<SearchCall>(*hq).query.quota->user, std::optional<uint64_t>(7));
  EXPECT_EQ(std::get<SearchCall>(*hq).query.quota->half_life, 30 * 86400);
  auto lq = DecodeHttpCall(
      "POST", "/v1/collections/m/search",
      R"({"vector":[1,2],"quota":{"p":"learned","user":7,"a":1.5,"total":100}})", 32);
  ASSERT_TRUE(lq.ok()) << lq.status();
  EXPECT_TRUE(std::get<SearchCall>(*lq).query.quota->learned);
  EXPECT_EQ(std::get<SearchCall>(*lq).query.quota->user, std::optional<uint64_t>(7));
  EXPECT_FALSE(std::get<SearchCall>(*hq).query.quota->learned);
  for (const char* bad :
       {R"({"p":"history","total":10})", R"({"p":"auto","user":7,"total":10})",
        R"({"p":"auto","half_life":60,"total":10})", R"({"p":"recent","total":10})",
        R"({"p":"learned","total":10})", R"({"p":"learned","user":7,"half_life":60,"total":10})"}) {
    EXPECT_FALSE(DecodeHttpCall("POST", "/v1/collections/m/search",
                                std::string(R"({"vector":[1,2],"quota":)") + bad + "}", 32)
                     .ok())
        << bad;
  }
  auto fj = DecodeHttpCall("POST", "/v1/collections/m/search",
                           R"({"vector":[1,2],"filter":{"and":[{"in":{"tag":[1,2]}},
                               {"not":{"range":{"timestamp":{"gte":10,"lt":21}}}}]}})",
                           32);
  ASSERT_TRUE(fj.ok()) << fj.status();
  const Filter& ff = *std::get<SearchCall>(*fj).query.filter;
  EXPECT_EQ(ff.op, Filter::Op::kAnd);
  ASSERT_EQ(ff.children.size(), 2u);
  EXPECT_EQ(ff.children[0].values, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ff.children[1].children[0].lo, 10);
  EXPECT_EQ(ff.children[1].children[0].hi, 20);
  EXPECT_FALSE(DecodeHttpCall("POST", "/v1/collections/m/search",
                              R"({"vector":[1],"filter":{"eq":{"colour":1}}})", 32)
                   .ok());
  EXPECT_FALSE(DecodeHttpCall("POST", "/v1/collections/m/search",
                              R"({"vector":[1],"filter":{"xor":[]}})", 32)
                   .ok());
  EXPECT_EQ(std::get<GetCall>(*DecodeHttpCall("GET", "/v1/collections/m/items/42", "", 32)).ids,
            std::vector<uint64_t>{42});
  EXPECT_TRUE(std::holds_alternative<DropCollectionCall>(
      *DecodeHttpCall("DELETE", "/v1/collections/m", "", 32)));
  EXPECT_TRUE(std::holds_alternative<HealthCall>(*DecodeHttpCall("GET", "/healthz", "", 32)));
  EXPECT_EQ(std::get<ReloadCall>(
                *DecodeHttpCall("POST", "/v1/versions/reload", R"({"version":"v2"})", 32))
                .version,
            "v2");
  // Cluster collection versions.
  EXPECT_EQ(
      std::get<ReloadCall>(*DecodeHttpCall("POST", "/v1/collections/m/versions",
                                           R"({"version":"v2","path":"/b","after_seq":7})", 32)),
      (ReloadCall{"v2", "m", "/b", 7}));
  EXPECT_EQ(std::get<ReloadCall>(*DecodeHttpCall("POST", "/v1/collections/m/versions",
                                                 R"({"version":"v2","path":"/b"})", 32))
                .after_seq,
            std::nullopt);
  EXPECT_FALSE(
      DecodeHttpCall("POST", "/v1/collections/m/versions", R"({"version":"v2"})", 32).ok());
  EXPECT_FALSE(DecodeHttpCall("POST", "/v1/collections/m/versions",
                              R"({"version":"v2","path":"/b","after_seq":-1})", 32)
                   .ok());
  EXPECT_EQ(
      std::get<RollbackCall>(*DecodeHttpCall("POST", "/v1/collections/m/versions/rollback", "", 32))
          .collection,
      "m");
  EXPECT_EQ(std::get<ListVersionsCall>(*DecodeHttpCall("GET", "/v1/collections/m/versions", "", 32))
                .collection,
            "m");
  // Batch search, count and scroll.
  auto batch = DecodeHttpCall(
      "POST", "/v1/collections/m/search/batch",
      R"({"searches":[{"vector":[1,2],"k":3},{"vectors":[[1,2],[3,4]],"payload":true}]})", 32);
  ASSERT_TRUE(batch.ok()) << batch.status();
  const auto& searches = std::get<SearchBatchCall>(*batch).searches;
  ASSERT_EQ(searches.size(), 2u);
  EXPECT_EQ(searches[0].collection, "m");
  EXPECT_EQ(searches[0].query.k, 3u);
  EXPECT_EQ(searches[1].query.vectors.size(), 2u);
  EXPECT_TRUE(searches[1].with_payload);
  auto bad_batch = DecodeHttpCall("POST", "/v1/collections/m/search/batch",
                                  R"({"searches":[{"vector":[1,2]},{"vector":[1],"kk":3}]})", 32);
  EXPECT_NE(bad_batch.status().message().find("searches[1]: unknown field 'kk'"), std::string::npos)
      << bad_batch.status();
  EXPECT_FALSE(
      DecodeHttpCall("POST", "/v1/collections/m/search/batch", R"({"searches":{}})", 32).ok());
  EXPECT_EQ(std::get<CountCall>(*DecodeHttpCall("GET", "/v1/collections/m/count", "", 32)),
            (CountCall{"m", std::nullopt}));
  EXPECT_EQ(std::get<CountCall>(*DecodeHttpCall("POST", "/v1/collections/m/count",
                                                R"({"filter":{"eq":{"category":4}}})", 32)),
            (CountCall{"m", Filter{Filter::Op::kEq, Filter::Field::kCategory, {4}}}));
  EXPECT_FALSE(DecodeHttpCall("POST", "/v1/collections/m/count", R"({"filtre":{}})", 32).ok());
  EXPECT_EQ(
      std::get<ScrollCall>(*DecodeHttpCall(
          "POST", "/v1/collections/m/scroll",
          R"({"cursor":18446744073709551615,"limit":7,"vectors":false,"payload":false})", 32)),
      (ScrollCall{"m", UINT64_MAX, 7, std::nullopt, false, false}));
  EXPECT_EQ(std::get<ScrollCall>(*DecodeHttpCall("POST", "/v1/collections/m/scroll", "", 32)),
            (ScrollCall{"m"}));
  EXPECT_FALSE(DecodeHttpCall("POST", "/v1/collections/m/scroll", R"({"cursor":-1})", 32).ok());
  // Shard assignment.
  EXPECT_EQ(std::get<AssignShardCall>(
                *DecodeHttpCall("PUT", "/v1/cluster/shards/1", R"({"nodes":["c0","b1"]})", 32)),
            (AssignShardCall{1, {"c0", "b1"}}));
  EXPECT_FALSE(DecodeHttpCall("PUT", "/v1/cluster/shards/1", R"({"nodes":"c0"})", 32).ok());
  EXPECT_FALSE(DecodeHttpCall("PUT", "/v1/cluster/shards/1", "{}", 32).ok());
  EXPECT_TRUE(
      std::holds_alternative<ClusterInfoCall>(*DecodeHttpCall("GET", "/v1/cluster", "", 32)));
  // Plugins and lists.
  auto run =
      DecodeHttpCall("POST", "/v1/collections/m/plugins/i2i_knn/run",
                     R"({"config": {"k": 50, "same_category": true}, "incremental": true})", 32);
  ASSERT_TRUE(run.ok()) << run.status();
  const auto& rc = std::get<RunPluginCall>(*run);
  EXPECT_EQ(rc.collection, "m");
  EXPECT_EQ(rc.plugin, "i2i_knn");
  EXPECT_EQ(rc.config, R"({"k":50,"same_category":true})");
  EXPECT_TRUE(rc.incremental);
  EXPECT_TRUE(
      std::get<RunPluginCall>(*DecodeHttpCall("POST", "/v1/collections/m/plugins/x/run", "", 32))
          .config.empty());
  auto gl = DecodeHttpCall("GET", "/v1/collections/m/lists/i2i/42", "", 32);
  ASSERT_TRUE(gl.ok()) << gl.status();
  EXPECT_EQ(std::get<GetListCall>(*gl).kind, "i2i");
  EXPECT_EQ(std::get<GetListCall>(*gl).key, 42u);
  EXPECT_TRUE(std::holds_alternative<ListListsCall>(
      *DecodeHttpCall("GET", "/v1/collections/m/lists", "", 32)));
  EXPECT_TRUE(
      std::holds_alternative<ListPluginsCall>(*DecodeHttpCall("GET", "/v1/plugins", "", 32)));
  EXPECT_EQ(DecodeHttpCall("GET", "/v1/collections/m/lists/i2i/x", "", 32).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(DecodeHttpCall("GET", "/v1/collections/m/plugins/i2i_knn/run", "", 32).status().code(),
            StatusCode::kUnimplemented);
  EXPECT_EQ(
      DecodeHttpCall("POST", "/v1/collections/m/plugins/i2i_knn/run", R"({"config": [1]})", 32)
          .status()
          .code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeHttpCall("POST", "/v1/collections/m/items/get/more", R"({"ids":[1]})", 32)
                .status()
                .code(),
            StatusCode::kNotFound);
}

TEST(JsonApiTest, BadRequestsGetClearErrors) {
  auto expect = [](std::string_view method, std::string_view target, std::string_view body,
                   StatusCode code, const std::string& word) {
    auto r = DecodeHttpCall(method, target, body, 8);
    ASSERT_FALSE(r.ok()) << target << " " << body;
    EXPECT_EQ(r.status().code(), code) << r.status();
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status();
  };
  expect("POST", "/v1/collections/m/search", "{\"vector\": [1, 2", StatusCode::kInvalidArgument,
         "not valid JSON");
  expect("POST", "/v1/collections/m/search", R"({"vector": "abc"})", StatusCode::kInvalidArgument,
         "vector");
  expect("POST", "/v1/collections/m/search", R"({"vector": [1], "colour": 1})",
         StatusCode::kInvalidArgument, "unknown field 'colour'");
  expect("POST", "/v1/collections/m/search", R"({"vector": [1], "k": -1})",
         StatusCode::kInvalidArgument, "k");
  expect("POST", "/v1/collections/m/search", "[1]", StatusCode::kInvalidArgument, "JSON object");
  expect("POST", "/v1/collections/m/search", R"({"vector": [[[[[[[[[[1]]]]]]]]]]})",
         StatusCode::kInvalidArgument, "JSON");
  expect("POST", "/v1/collections/m/items", R"({"items":[{"id":1,"vector":[1],"tags":["x"]}]})",
         StatusCode::kInvalidArgument, "items[0]: bad tags");
  expect("GET", "/v1/nothing", "", StatusCode::kNotFound, "no route");
  expect("PUT", "/v1/collections/m/search", "{}", StatusCode::kUnimplemented, "not allowed");
  expect("POST", "/v1/versions/reload", "{}", StatusCode::kInvalidArgument, "version");
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnimplemented), 405);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401);
}

TEST(JsonApiTest, RepliesEncodeAsJsonWithExactFloats) {
  HttpReply r = EncodeHttpReply(Reply{Status::Ok(), SearchResult{{{7, 0.1f}, {8, -1.0f / 3.0f}}}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"hits":[{"id":7,"score":0.1},{"id":8,"score":-0.33333334}]})");
  HttpReply e = EncodeHttpReply(Reply{NotFoundError("no \"x\""), {}});
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(e.body, R"({"error":{"code":"NOT_FOUND","message":"no \"x\""}})");
  // A message echoing a 1 MB name is cut, over REST and over the binary protocol.
  const Status huge = NotFoundError("no collection named '" + std::string(1 << 20, 'n') + "'");
  HttpReply h = EncodeHttpReply(Reply{huge, {}});
  EXPECT_EQ(h.status, 404);
  EXPECT_LT(h.body.size(), 1200u);
  EXPECT_NE(h.body.find("no collection named 'nnn"), std::string::npos) << h.body;
  EXPECT_NE(h.body.find("(1048598 bytes, cut)"), std::string::npos) << h.body;
  const std::string frame = EncodeResponseFrame(3, Reply{huge, {}});
  EXPECT_LT(frame.size(), 1200u);
  auto back = DecodeResponse(std::string_view(frame).substr(kFrameHeaderBytes));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->reply.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(back->reply.status.message(), ReplyMessage(huge.message()));
  HttpReply g = EncodeHttpReply(Reply{Status::Ok(), GetResult{{SampleItem(3), std::nullopt}}});
  EXPECT_NE(g.body.find(R"("payload":{"title":"a \"quoted\" name"})"), std::string::npos) << g.body;
  EXPECT_NE(g.body.find(",null]"), std::string::npos) << g.body;
}

}  // namespace
}  // namespace quiver::net
