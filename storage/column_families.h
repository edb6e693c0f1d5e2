// Column-family names of a Quiver database, in one place. Changing one is a format change.
#pragma once

namespace quiver::storage {

inline constexpr const char* kMetaColumnFamily = "default";  // format, schemas, op sequences
inline constexpr const char* kItemsColumnFamily = "items";
inline constexpr const char* kUsersColumnFamily = "users";
inline constexpr const char* kNeighborsColumnFamily = "neighbors";
inline constexpr const char* kOplogColumnFamily = "oplog";

// The format marker stored in the meta column family; a directory with another marker was
// written by an incompatible version.
inline constexpr const char* kFormatKey = "format";
inline constexpr const char* kFormatValue = "quiver-store-1";

}  // namespace quiver::storage
