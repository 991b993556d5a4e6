-- start.lua: a worker is about to send under `permit`; move the permit to the real send time.
--
-- The release decision assumed the send happens at the permit's time; recording the actual
-- time keeps the sliding logs exact for every later decision. A permit older than `max_age`
-- (the message waited in the queue) or gone (Redis lost the logs) gives its slot back and
-- tries to take a fresh one now, under the same checks the release makes (app, tenant, team
-- and channel, and the channel's daily quota); only when a scope is full (or cooling down)
-- does the worker park the delivery. So a slow queue costs a re-check, never a cycle of
-- stale permits, and a late send can never crowd a window. A fresh permit is refused too
-- while a scope of it cools down (a Retry-After Graph announced after its release).
--
-- The channel's daily quota is counted here, at the real send, in the day of the send; the
-- permit's reservation (permits.lua: outstanding since the release) ends.
--
-- A delivery whose broadcast was cancelled gets no permit: its reservation is given back and
-- the worker records it cancelled without a POST.
--
-- "now" is Redis's TIME (clock.lua), the clock the permit was issued on: a worker whose own
-- clock lags cannot record its send earlier than it happens.
--
-- On "go" the delivery is also dropped from the known hash: it is claimed, in flight, and no
-- longer waits anywhere in Redis.
--
-- KEYS[1] app log   KEYS[2] tenant log   KEYS[3] team log   KEYS[4] channel log
-- KEYS[5] known hash   KEYS[6] cancelled zset
-- KEYS[7..10] cooldown keys: app, tenant, team, channel (keys.cooldown)   KEYS[11] started zset
-- KEYS[12] the quota hash of the permit's day (keys.permit_day)
-- KEYS[13..15] the quota hashes of yesterday, today and tomorrow on the caller's clock
-- ARGV[1] permit id   ARGV[2] max age (seconds)   ARGV[3] delivery id   ARGV[4] window
-- ARGV[5] app limit   ARGV[6] tenant limit   ARGV[7] team limit   ARGV[8] channel limit
-- ARGV[9] broadcast   ARGV[10] '<tenant>:<team>:<channel>'   ARGV[11] channel daily quota
-- ARGV[12] day-hash ttl (seconds)
-- Returns 1 (go), 0 (no room now: park it) or 2 (its broadcast is cancelled: no POST).

local SCOPES = 4
local permit, max_age, delivery = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local where, daily = ARGV[10], tonumber(ARGV[11])
local known_key, permit_day = KEYS[5], KEYS[12]
local now = redis_now()
local window = tonumber(ARGV[4])
local logs = {KEYS[1], KEYS[2], KEYS[3], KEYS[4]}

-- Out of every log, and its reservation given back if it was outstanding.
local function withdraw()
  if not give_back(known_key, delivery, permit, logs, where, permit_day) then
    for i = 1, SCOPES do redis.call('ZREM', KEYS[i], permit) end
  end
end

if broadcast_cancelled(KEYS[6], ARGV[9], now) then
  give_back(known_key, delivery, permit, logs, where, permit_day)
  redis.call('HDEL', known_key, delivery)
  return 2
end
local day_key = today_of({KEYS[13], KEYS[14], KEYS[15]}, now)
local issued = redis.call('ZSCORE', KEYS[1], permit)
if not issued or now - tonumber(issued) > max_age then
  -- Stale or lost: its slot and its reservation go back, and a fresh slot is taken if every
  -- scope has room now.
  withdraw()
  for i = 1, SCOPES do
    if room_at(KEYS[i], tonumber(ARGV[4 + i]), window, now, KEYS[6 + i]) > now then return 0 end
  end
  if quota_state(day_key, where, daily) then return 0 end
  for i = 1, SCOPES do redis.call('ZADD', KEYS[i], now, permit) end
else
  -- A permit issued before Graph throttled a scope of it (a 429's Retry-After, charged
  -- after the release) must not be used during the cooldown: it is given back and the
  -- delivery parks.
  for i = 1, SCOPES do
    if cooling_until(KEYS[6 + i]) > now then
      withdraw()
      return 0
    end
  end
  give_back(known_key, delivery, permit, {}, where, permit_day) -- the reservation becomes a send
  for i = 1, SCOPES do redis.call('ZADD', KEYS[i], 'XX', now, permit) end
end
-- Every log this script touches expires like one the release creates.
for i = 2, SCOPES do redis.call('EXPIRE', KEYS[i], math.ceil(window) + 60) end
count_send(day_key, where, tonumber(ARGV[12]))
redis.call('HDEL', known_key, delivery)
-- Started: an idempotent re-send that read it as queued a moment ago must not put it in again.
redis.call('ZADD', KEYS[11], now, delivery)
redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', now - 300)
redis.call('EXPIRE', KEYS[11], 600)
return 1
