-- park.lua: put one delivery back to wait, either at the front of its team's queue (due now)
-- or in the delayed zset until `delay` seconds from now.
--
-- "now" is Redis's TIME (clock.lua): the caller says how long, never until when, so a worker
-- with a wrong clock cannot park a delivery too briefly or for too long. The entry's ready
-- time ("a") is re-stamped with the due time on the same clock.
--
-- KEYS[1] delayed zset   KEYS[2] tenants zset   KEYS[3] known hash   KEYS[4] team queue
-- KEYS[5] tenant's teams zset   KEYS[6] wake list
-- ARGV[1] entry (JSON)   ARGV[2] delay (seconds)   ARGV[3] tenant   ARGV[4] team
-- ARGV[5] delivery id
-- Returns 1.

local now, delay = redis_now(), tonumber(ARGV[2])
local due = now + math.max(0, delay)
local e = cjson.decode(ARGV[1])
e.a = math.floor(due * 1000 + 0.5) / 1000 -- milliseconds, as the producer writes it
local entry = cjson.encode(e)
if delay > 0 then
  redis.call('ZADD', KEYS[1], due, entry)
else
  redis.call('LPUSH', KEYS[4], entry)
  redis.call('ZADD', KEYS[5], 'NX', now, ARGV[4])
  redis.call('ZADD', KEYS[2], 'NX', now, ARGV[3])
end
redis.call('HSET', KEYS[3], ARGV[5], 'p')
redis.call('LPUSH', KEYS[6], '1')
redis.call('LTRIM', KEYS[6], 0, 0)
return 1
