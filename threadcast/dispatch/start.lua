-- start.lua: a worker is about to send under `permit`; move the permit to the real send time.
--
-- The release decision assumed the send happens at the permit's time; recording the actual
-- time keeps the sliding logs exact for every later decision. A permit older than `max_age`
-- (the message waited too long in the queue) or gone (Redis lost the logs) is refused: the
-- delivery is parked again and gets a fresh permit, so a late send can never crowd a window.
--
-- On "go" the delivery is also dropped from the known hash: it is claimed, in flight, and no
-- longer waits anywhere in Redis.
--
-- KEYS[1] app log   KEYS[2] tenant log   KEYS[3] team log   KEYS[4] known hash
-- ARGV[1] permit id   ARGV[2] now   ARGV[3] max age (seconds)   ARGV[4] delivery id
-- Returns 1 (go) or 0 (stale: park and re-release).

local permit, now, max_age = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local issued = redis.call('ZSCORE', KEYS[1], permit)
if not issued or now - tonumber(issued) > max_age then
  for i = 1, 3 do redis.call('ZREM', KEYS[i], permit) end
  return 0
end
for i = 1, 3 do redis.call('ZADD', KEYS[i], 'XX', now, permit) end
redis.call('HDEL', KEYS[4], ARGV[4])
return 1
