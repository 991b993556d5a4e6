-- cooldown.lua: Graph said "Retry-After"; nobody sends into that scope until it passes.
--
-- A 429 does not say which limit was hit. We charge it to the scope that was fullest in
-- the last window (permits / limit), ties going to the narrowest scope; mode "tenant"
-- (a 503 with Retry-After) charges the tenant. A cooldown only ever grows.
--
-- KEYS[1] cooldowns hash   KEYS[2] app log   KEYS[3] tenant log   KEYS[4] team log
-- ARGV[1] now   ARGV[2] window   ARGV[3] app limit   ARGV[4] tenant limit   ARGV[5] team limit
-- ARGV[6] until   ARGV[7] mode ("auto" | "tenant")   ARGV[8] tenant field   ARGV[9] team field
-- Returns the cooldown field charged.

local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local fields = {'app', ARGV[8], ARGV[9]}
local chosen = ARGV[8]
if ARGV[7] == 'auto' then
  local best = -1
  for i = 3, 1, -1 do
    local limit = tonumber(ARGV[2 + i])
    local used = redis.call('ZCOUNT', KEYS[1 + i], '(' .. (now - window), '+inf')
    local share = limit > 0 and used / limit or 1
    if share > best then best, chosen = share, fields[i] end
  end
end
local current = tonumber(redis.call('HGET', KEYS[1], chosen) or '0')
if tonumber(ARGV[6]) > current then redis.call('HSET', KEYS[1], chosen, ARGV[6]) end
return chosen
