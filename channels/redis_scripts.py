"""Lua scripts: each one is the atomic step it is named after.

Redis runs a script without interleaving other commands, so whatever one
script does (assign an offset, append to the window and the persist log,
publish) every node observes in one order. A script is not rolled back on an
error, so every check that can fail comes before the first write.
"""

from __future__ import annotations

# KEYS: 1 meta hash, 2 hot window list, 3 persist log stream
# ARGV: 1 topic, 2 node id, 3 record payload, 4 window size, 5 history ttl (s),
#       6 meta ttl (s), 7 fresh epoch, 8 initial top offset (-1: ask the caller),
#       9 persist ("1"/"0"), 10 consumer group, 11 packed stream options,
#       12 channel, 13 sharded pub/sub ("1"/"0")
# Returns {offset, epoch, persist entry id} or {-1} when the stream has no
# epoch and the caller must supply the initial offset (durable store's top).
PUBLISH = """
local epoch = redis.call('hget', KEYS[1], 'e')
if not epoch then
  local init = tonumber(ARGV[8])
  if init < 0 then return {-1} end
  epoch = ARGV[7]
  redis.call('hset', KEYS[1], 'e', epoch, 's', init)
  redis.call('del', KEYS[2])  -- a window left from an earlier epoch
end
local offset = redis.call('hincrby', KEYS[1], 's', 1)
local env = cmsgpack.pack({ARGV[2], 'p', offset, epoch, ARGV[3]})
redis.call('rpush', KEYS[2], env)
redis.call('ltrim', KEYS[2], -tonumber(ARGV[4]), -1)
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('expire', KEYS[2], ttl) end
local meta_ttl = tonumber(ARGV[6])
if meta_ttl > 0 then redis.call('expire', KEYS[1], meta_ttl) end
local id = ''
if ARGV[9] == '1' then
  if redis.call('exists', KEYS[3]) == 0 then
    redis.call('xgroup', 'create', KEYS[3], ARGV[10], '$', 'MKSTREAM')
  end
  id = redis.call('xadd', KEYS[3], '*', 'c', ARGV[12], 'm', env, 'o', ARGV[11])
  -- Hand the entry to this node in the group: it is now pending under our
  -- name, so if we die before acknowledging it another node claims it.
  redis.call('xreadgroup', 'GROUP', ARGV[10], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[3], '>')
end
if ARGV[13] == '1' then
  redis.call('spublish', ARGV[1], env)
else
  redis.call('publish', ARGV[1], env)
end
return {offset, epoch, id}
"""

# KEYS: 1 meta hash, 2 hot window list
# ARGV: 1 fresh epoch, 2 initial top (-1: ask the caller), 3 meta ttl,
#       4 since offset (-1: none), 5 limit (-1: all, 0: none), 6 reverse ("1"/"0"), 7 history size
# Returns {top, epoch, the window entries the query needs} or {-1}.
# The window holds offsets top-len+1 .. top, oldest first (PUBLISH appends in
# the step that assigns the offset and drops a window of an earlier epoch), so
# the entries a query needs are one index range: only those cross the network.
# The range is redis_history.need_range's; keep the two alike.
HISTORY = """
local epoch = redis.call('hget', KEYS[1], 'e')
if not epoch then
  local init = tonumber(ARGV[2])
  if init < 0 then return {-1} end
  epoch = ARGV[1]
  redis.call('hset', KEYS[1], 'e', epoch, 's', init)
  redis.call('del', KEYS[2])
  local meta_ttl = tonumber(ARGV[3])
  if meta_ttl > 0 then redis.call('expire', KEYS[1], meta_ttl) end
end
local top = tonumber(redis.call('hget', KEYS[1], 's'))
local since, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
if limit == 0 then return {top, epoch, {}} end
local lo = math.max(top - tonumber(ARGV[7]) + 1, 1)
local from, to
if ARGV[6] == '1' then
  to = top
  if since >= 0 then to = math.min(top, since - 1) end
  from = lo
  if limit > 0 then from = math.max(lo, to - limit + 1) end
else
  from = lo
  if since >= 0 then from = math.max(lo, since + 1) end
  to = top
  if limit > 0 then to = math.min(top, from + limit - 1) end
end
local first = top - redis.call('llen', KEYS[2]) + 1
local i, j = math.max(from, first) - first, to - first
local items = {}
if j >= i then items = redis.call('lrange', KEYS[2], i, j) end
return {top, epoch, items}
"""

# KEYS: 1 persist log. ARGV: 1 group, 2.. entry ids. Acknowledge and drop.
ACK = """
redis.call('xack', KEYS[1], ARGV[1], unpack(ARGV, 2))
return redis.call('xdel', KEYS[1], unpack(ARGV, 2))
"""

# KEYS: 1 expiry zset, 2 info hash. ARGV: 1 expires at, 2 client id, 3 info, 4 key ttl
PRESENCE_ADD = """
redis.call('zadd', KEYS[1], ARGV[1], ARGV[2])
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
redis.call('expire', KEYS[1], ARGV[4])
redis.call('expire', KEYS[2], ARGV[4])
return 1
"""

# KEYS: 1 expiry zset, 2 info hash. ARGV: 1 client id
PRESENCE_REMOVE = """
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('hdel', KEYS[2], ARGV[1])
return 1
"""

# KEYS: 1 expiry zset, 2 info hash. ARGV: 1 now (unix seconds)
# Drops expired entries, then returns the hash's values.
PRESENCE_GET = """
local expired = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1])
for i = 1, #expired, 1000 do
  redis.call('hdel', KEYS[2], unpack(expired, i, math.min(i + 999, #expired)))
end
if #expired > 0 then redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1]) end
return redis.call('hvals', KEYS[2])
"""
