// The search request on the binary wire, one Put/Get pair per operator, mirroring the REST
// body's per-operator decoders (net/json_search.cc): an operator reads the same in both
// protocols. Internal to the codec (net/schema/wire_codec.cc).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "net/schema/calls.h"
#include "net/schema/quiver_generated.h"

namespace quiver::net::wirecodec {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;
using FloatVectors = flatbuffers::Vector<Offset<wire::FloatVector>>;

inline std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

template <typename T>
std::vector<T> Vec(const flatbuffers::Vector<T>* v) {
  return v ? std::vector<T>(v->begin(), v->end()) : std::vector<T>();
}

// A list of float vectors (multi-vector queries, MVKE user vectors); empty: absent.
Offset<FloatVectors> PutFloatVectors(FlatBufferBuilder& b,
                                     const std::vector<std::vector<float>>& vs);
std::vector<std::vector<float>> GetFloatVectors(const FloatVectors* vs);

Offset<wire::Search> PutSearch(FlatBufferBuilder& b, const SearchCall& c);
Result<SearchCall> GetSearch(const wire::Search* s);
Offset<wire::Filter> PutFilter(FlatBufferBuilder& b, const Filter& f);
Result<Filter> GetFilter(const wire::Filter* w);
Offset<wire::SearchResult> PutSearchResult(FlatBufferBuilder& b, const SearchResult& s);
SearchResult GetSearchResult(const wire::SearchResult* w);

}  // namespace quiver::net::wirecodec
