-- cancel.lua: mark a broadcast cancelled (or no longer cancelled) in the gate.
--
-- The mark lives in the cancelled zset (broadcast -> when it lapses, by Redis's TIME) for
-- `ttl` seconds: long enough for every entry of the broadcast to leave (release.lua and
-- promote.lua drop them, start.lua refuses their permits); the zset itself expires `ttl`
-- after its last mark. The dispatcher is woken so the entries leave now.
--
-- KEYS[1] cancelled zset   KEYS[2] wake list
-- ARGV[1] broadcast   ARGV[2] ttl seconds (0: remove the mark)
-- Returns 1.

local now, ttl = redis_now(), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ttl > 0 then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(ttl))
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, 0)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
