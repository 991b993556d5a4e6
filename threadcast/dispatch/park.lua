-- park.lua: put one delivery back to wait, either at the front of its team's queue (due now)
-- or in the delayed zset until `delay` seconds from now.
--
-- "now" is Redis's TIME (clock.lua): the caller says how long, never until when, so a worker
-- with a wrong clock cannot park a delivery too briefly or for too long. The entry's ready
-- time ("a") is re-stamped with the due time on the same clock.
--
-- A permit that `known` still names was never started (start.lua forgets it on "go"): no
-- POST was made under it, so its slot in the logs and its quota reservation are freed
-- (permits.lua). Whoever parks it -- a worker giving a claim back, a tenant's token trouble,
-- the dispatcher after a failed publish -- leaks nothing. A delivery of a cancelled
-- broadcast is not parked at all: it leaves the gate.
--
-- KEYS[1] delayed zset   KEYS[2] tenants zset   KEYS[3] known hash   KEYS[4] team queue
-- KEYS[5] tenant's teams zset   KEYS[6] wake list   KEYS[7] cancelled zset
-- KEYS[8..11] app, tenant, team, channel logs   KEYS[12] the permit's quota hash (keys.permit_day)
-- ARGV[1] entry (JSON)   ARGV[2] delay (seconds)   ARGV[3] tenant   ARGV[4] team
-- ARGV[5] delivery id   ARGV[6] permit ('' when none)   ARGV[7] broadcast
-- ARGV[8] '<tenant>:<team>:<channel>'
-- Returns 1 (parked) or 0 (dropped: its broadcast is cancelled).

local now, delay = redis_now(), tonumber(ARGV[2])
if ARGV[6] ~= '' then
  give_back(KEYS[3], ARGV[5], ARGV[6], {KEYS[8], KEYS[9], KEYS[10], KEYS[11]}, ARGV[8],
            KEYS[12])
end
if broadcast_cancelled(KEYS[7], ARGV[7], now) then
  local known = redis.call('HGET', KEYS[3], ARGV[5])
  if known and string.sub(known, 1, 1) ~= 'r' then redis.call('HDEL', KEYS[3], ARGV[5]) end
  return 0
end
local due = now + math.max(0, delay)
local e = cjson.decode(ARGV[1])
e.a = math.floor(due * 1000 + 0.5) / 1000 -- milliseconds, as the producer writes it
local entry = cjson.encode(e)
if delay > 0 then
  redis.call('ZADD', KEYS[1], due, entry)
  redis.call('HSET', KEYS[3], ARGV[5], 'd' .. string.format('%.17g', due))
else
  redis.call('LPUSH', KEYS[4], entry)
  redis.call('ZADD', KEYS[5], 'NX', now, ARGV[4])
  redis.call('ZADD', KEYS[2], 'NX', now, ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[5], 'p')
end
redis.call('LPUSH', KEYS[6], '1')
redis.call('LTRIM', KEYS[6], 0, 0)
return 1
