-- start.lua: a worker is about to send under `permit`; move the permit to the real send time.
--
-- The release decision assumed the send happens at the permit's time; recording the actual
-- time keeps the sliding logs exact for every later decision. A permit older than `max_age`
-- (the message waited in the queue) or gone (Redis lost the logs) gives its slot back and
-- tries to take a fresh one now, under the same checks the release makes; only when a scope
-- is full (or cooling down) does the worker park the delivery. So a slow queue costs a
-- re-check, never a cycle of stale permits, and a late send can never crowd a window.
--
-- On "go" the delivery is also dropped from the known hash: it is claimed, in flight, and no
-- longer waits anywhere in Redis.
--
-- KEYS[1] app log   KEYS[2] tenant log   KEYS[3] team log   KEYS[4] known hash
-- KEYS[5] cooldowns hash
-- ARGV[1] permit id   ARGV[2] now   ARGV[3] max age (seconds)   ARGV[4] delivery id
-- ARGV[5] window   ARGV[6] app limit   ARGV[7] tenant limit   ARGV[8] team limit
-- ARGV[9] tenant cooldown field   ARGV[10] team cooldown field
-- Returns 1 (go) or 0 (no room now: park it).

local permit, now, max_age = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local issued = redis.call('ZSCORE', KEYS[1], permit)
if not issued or now - tonumber(issued) > max_age then
  for i = 1, 3 do redis.call('ZREM', KEYS[i], permit) end
  local window = tonumber(ARGV[5])
  local fields = {'app', ARGV[9], ARGV[10]}
  for i = 1, 3 do
    local limit = tonumber(ARGV[5 + i])
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. (now - window))
    if limit <= 0 or redis.call('ZCARD', KEYS[i]) >= limit then return 0 end
    local cool = tonumber(redis.call('HGET', KEYS[5], fields[i]) or '0')
    if cool > now then return 0 end
  end
  for i = 1, 3 do redis.call('ZADD', KEYS[i], now, permit) end
else
  for i = 1, 3 do redis.call('ZADD', KEYS[i], 'XX', now, permit) end
end
redis.call('HDEL', KEYS[4], ARGV[4])
return 1
