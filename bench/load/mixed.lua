-- wrk script for the mixed load run (bench/load/run.sh): 90% searches (k 50, one of 200 random
-- vectors, dim 32) and 10% upserts of one item (ids from a fixed range, replacing each other)
-- against the MovieLens demo collection "movies". Non-2xx answers are counted by wrk.
local dim, clusters, topics = 32, 16, 4
local searches, upserts = {}, {}

local function vector()
  local v = {}
  for d = 1, dim do v[d] = string.format("%.4f", (math.random() - 0.5) * 2) end
  return "[" .. table.concat(v, ",") .. "]"
end

init = function(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  for i = 1, 200 do searches[i] = '{"k":50,"vector":' .. vector() .. '}' end
  local w = string.format("%.2f", 1 / topics)
  local t = {}
  for k = 1, topics do t[k] = w end
  for i = 1, 50 do
    upserts[i] = string.format('{"items":[{"id":%d,"vector":%s,"cluster":%d,"topics":[%s],"timestamp":1537000000}]}',
                               2000000 + math.random(0, 9999), vector(), math.random(0, clusters - 1),
                               table.concat(t, ","))
  end
end

request = function()
  local headers = {["Content-Type"] = "application/json"}
  if math.random() < 0.1 then
    return wrk.format("POST", "/v1/collections/movies/items", headers, upserts[math.random(1, #upserts)])
  end
  return wrk.format("POST", "/v1/collections/movies/search", headers, searches[math.random(1, #searches)])
end
