-- cooldown.lua: Graph said "Retry-After"; nobody sends into that scope until it passes.
--
-- A 429 does not say which limit was hit. We charge it to the scope that was fullest in
-- the last window (permits / limit); mode "tenant" (a 503 with Retry-After) charges the
-- tenant. Ties go to the narrowest of team, tenant and app; the channel wins only when it is
-- strictly the fullest: its log always holds the throttled post itself, so at a limit of 1
-- it is always full, and charging it on a tie would leave a full team or tenant sending
-- into more 429s. (Strictly fullest, it names what the others cannot: a channel that
-- someone else posted into, e.g. the signed-in user by hand.) A cooldown only ever grows.
-- "now" is Redis's TIME (clock.lua).
--
-- Each cooldown is a key of its own (keys.cooldown: "until") that expires when the cooldown
-- ends, so nothing is left behind by scopes never throttled again.
--
-- KEYS[1..4] cooldown keys: app, tenant, team, channel
-- KEYS[5] app log   KEYS[6] tenant log   KEYS[7] team log   KEYS[8] channel log
-- ARGV[1] window   ARGV[2] app limit   ARGV[3] tenant limit   ARGV[4] team limit
-- ARGV[5] channel limit   ARGV[6] seconds to cool down   ARGV[7] mode ("auto" | "tenant")
-- ARGV[8] tenant field   ARGV[9] team field   ARGV[10] channel field
-- Returns the cooldown field (scope) charged.

local now, window = redis_now(), tonumber(ARGV[1])
local fields = {'app', ARGV[8], ARGV[9], ARGV[10]}
local chosen = 2
if ARGV[7] == 'auto' then
  local best = -1
  for _, i in ipairs({3, 2, 1, 4}) do -- team, tenant, app, channel: the first wins a tie
    local limit = tonumber(ARGV[1 + i])
    local used = redis.call('ZCOUNT', KEYS[4 + i], '(' .. (now - window), '+inf')
    local share = limit > 0 and used / limit or 1
    if share > best then best, chosen = share, i end
  end
end
local until_ = now + tonumber(ARGV[6])
local key = KEYS[chosen]
local current = tonumber(redis.call('GET', key) or '0')
if until_ > current then
  redis.call('SET', key, string.format('%.6f', until_))
  redis.call('PEXPIREAT', key, math.ceil(until_ * 1000))
end
return fields[chosen]
