-- promote.lua: move delayed deliveries whose time has come to the front of their team's queue.
--
-- Retries, Retry-After waits, quota holds and deliveries whose channel was full wait in the
-- delayed zset (score = due time).
-- Promoted entries go to the FRONT of their queue (they have waited longest) and make their
-- team and tenant eligible now unless those already have a score (which may be a later one:
-- a cooldown is never shortened). "Due" is by Redis's TIME (clock.lua), the clock every due
-- time was written on. Several entries of one queue due together come back in reverse order.
-- An entry of a cancelled broadcast is dropped instead (its known field removed).
--
-- KEYS[1] delayed zset   KEYS[2] tenants zset   KEYS[3] known hash   KEYS[4] cancelled zset
-- ARGV[1] max entries   ARGV[2] the teams pattern   ARGV[3] the queue pattern (keys.py:
-- which tenant and team an entry goes back to is only known here)
-- Returns the number of entries promoted.

local delayed_key, tenants_key, known_key, cancelled_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, most, TEAMS, QUEUE = redis_now(), tonumber(ARGV[1]), ARGV[2], ARGV[3]

local promoted = 0
local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, most)
for _, entry in ipairs(due) do
  local e = cjson.decode(entry)
  redis.call('ZREM', delayed_key, entry)
  if broadcast_cancelled(cancelled_key, e.b, now) then
    local known = redis.call('HGET', known_key, e.d)
    if known and string.sub(known, 1, 1) == 'd' then redis.call('HDEL', known_key, e.d) end
  else
    redis.call('LPUSH', string.format(QUEUE, e.t, e.g), entry)
    redis.call('ZADD', string.format(TEAMS, e.t), 'NX', now, e.g)
    redis.call('ZADD', tenants_key, 'NX', now, e.t)
    redis.call('HSET', known_key, e.d, 'p')
    promoted = promoted + 1
  end
end
return promoted
