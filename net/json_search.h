// The search request's JSON body, decoded one operator at a time, mirroring the binary codec's
// per-table Put/Get pairs (net/schema/wire_codec.cc): an operator reads the same in both
// protocols. docs/queries.md has every field. Internal to net/.
#pragma once

#include <string>

#include "base/result.h"
#include "net/json_read.h"
#include "net/schema/calls.h"

namespace quiver::net::json {

// The whole body of POST /v1/collections/{c}/search.
Result<SearchCall> SearchFromJson(object obj, const std::string& collection);

// One operator each: the value of its field in the body.
Result<Aggregate> AggregateFromJson(element e);
Result<Filter> FilterFromJson(element e);
Result<QuotaSpec> QuotaFromJson(element e);
Result<MvkeSpec> MvkeFromJson(element e);
Result<Fresh> FreshFromJson(element e);
Result<Channels> ChannelsFromJson(element e);
Result<Rerank> RerankFromJson(element e);
// "params": {"ef", "nprobe", "refine"} into the query.
Status ParamsFromJson(element e, QuerySpec* q);

}  // namespace quiver::net::json
