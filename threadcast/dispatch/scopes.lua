-- scopes.lua (library): is this scope full? The one answer release.lua and start.lua use.
--
-- A scope (the app, a tenant, a team, a channel) keeps a sliding log: a zset of permit
-- times. It is full while `limit` permits fall within the last `window` seconds, and frees
-- when the oldest of those leaves the window; it is closed while its cooldown (a Retry-After
-- Graph announced; keys.cooldown: a string "until" that expires then) runs.

local FOREVER = 1e12

-- When the cooldown in `cool_key` ends (0: none).
local function cooling_until(cool_key)
  return tonumber(redis.call('GET', cool_key) or '0')
end

-- When the scope has room for one more permit: `now` or later (FOREVER for a zero limit).
-- Trims the log's expired permits.
local function room_at(log, limit, window, now, cool_key)
  if limit <= 0 then return FOREVER end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', '(' .. (now - window))
  local at = now
  local n = redis.call('ZCARD', log)
  if n >= limit then
    local oldest = redis.call('ZRANGE', log, n - limit, n - limit, 'WITHSCORES')
    at = tonumber(oldest[2]) + window
  end
  local cool = cooling_until(cool_key)
  if cool > at then at = cool end
  return at
end
