-- pace.lua: a permit from several sliding logs at once, or how long until one may be had.
--
-- What is not a post but still counts against Graph's limits takes its permits here: an
-- edit or a recall (the edits' app and tenant logs, and the team and channel logs the posts'
-- permits are in, so release.lua sees them too), an audience read (its kind's app and
-- tenant logs, and the team's log for a team's channel list). Not one log is written
-- unless every one has room and none cools down. Nothing here counts in the daily quota.
-- "now" is Redis's TIME (clock.lua).
--
-- A scope may also ask for its permits evenly spread: one at most every window / limit
-- seconds, never a window's worth at once. A burst of requests leaves the sender unevenly
-- (the last of a burst waits for the others to be written), and a window whose arrivals
-- trail its permits can overlap the next one at Graph; spread out, each waits for none.
--
-- KEYS[1..n] the logs   KEYS[n+1..2n] the cooldown keys of the same scopes, in that order
-- ARGV[1] window   ARGV[2] permit id   ARGV[3..n+2] the limits, in the logs' order
-- ARGV[n+3..2n+2] 1 where the scope's permits are spread evenly, else 0
-- Returns {"0", 0} (go), or {seconds until there may be room, the full scope's index 1..n}.

local n = #KEYS / 2
local now, window = redis_now(), tonumber(ARGV[1])
for i = 1, n do
  local limit = tonumber(ARGV[2 + i])
  local at = room_at(KEYS[i], limit, window, now, KEYS[n + i])
  if ARGV[2 + n + i] == '1' and limit > 0 then
    local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    if last[2] then at = math.max(at, tonumber(last[2]) + window / limit) end
  end
  if at > now then return {string.format('%.6f', at - now), i} end
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[2])
  redis.call('EXPIRE', KEYS[i], math.ceil(window) + 60)
end
return {'0', 0}
