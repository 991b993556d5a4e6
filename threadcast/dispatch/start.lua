-- start.lua: a worker is about to send under `permit`; move the permit to the real send time.
--
-- The release decision assumed the send happens at the permit's time; recording the actual
-- time keeps the sliding logs exact for every later decision. A permit older than `max_age`
-- (the message waited in the queue) or gone (Redis lost the logs) gives its slot back and
-- tries to take a fresh one now, under the same checks the release makes (app, tenant, team
-- and channel); only when a scope is full (or cooling down) does the worker park the
-- delivery. So a slow queue costs a re-check, never a cycle of stale permits, and a late
-- send can never crowd a window.
--
-- "now" is Redis's TIME (clock.lua), the clock the permit was issued on: a worker whose own
-- clock lags cannot record its send earlier than it happens.
--
-- On "go" the delivery is also dropped from the known hash: it is claimed, in flight, and no
-- longer waits anywhere in Redis.
--
-- KEYS[1] app log   KEYS[2] tenant log   KEYS[3] team log   KEYS[4] channel log
-- KEYS[5] known hash   KEYS[6] cooldowns hash
-- ARGV[1] permit id   ARGV[2] max age (seconds)   ARGV[3] delivery id   ARGV[4] window
-- ARGV[5] app limit   ARGV[6] tenant limit   ARGV[7] team limit   ARGV[8] channel limit
-- ARGV[9] tenant cooldown field   ARGV[10] team cooldown field   ARGV[11] channel cooldown field
-- Returns 1 (go) or 0 (no room now: park it).

local SCOPES = 4
local permit, max_age = ARGV[1], tonumber(ARGV[2])
local now = redis_now()
local issued = redis.call('ZSCORE', KEYS[1], permit)
if not issued or now - tonumber(issued) > max_age then
  for i = 1, SCOPES do redis.call('ZREM', KEYS[i], permit) end
  local window = tonumber(ARGV[4])
  local fields = {'app', ARGV[9], ARGV[10], ARGV[11]}
  for i = 1, SCOPES do
    local limit = tonumber(ARGV[4 + i])
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. (now - window))
    if limit <= 0 or redis.call('ZCARD', KEYS[i]) >= limit then return 0 end
    local cool = tonumber(redis.call('HGET', KEYS[6], fields[i]) or '0')
    if cool > now then return 0 end
  end
  redis.call('ZADD', KEYS[1], now, permit)
  -- A log this path creates (Redis lost it) must expire like one the release creates.
  for i = 2, SCOPES do
    redis.call('ZADD', KEYS[i], now, permit)
    redis.call('EXPIRE', KEYS[i], math.ceil(window) + 60)
  end
else
  for i = 1, SCOPES do redis.call('ZADD', KEYS[i], 'XX', now, permit) end
end
redis.call('HDEL', KEYS[5], ARGV[3])
return 1
