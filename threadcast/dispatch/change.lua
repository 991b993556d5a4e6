-- change.lua: a permit for one edit or recall request (PATCH or softDelete of a message).
--
-- Graph bounds message edits by limits of their own (per app, per tenant), and counts them
-- in the team's and the channel's per-second limits beside the posts. So a permit is taken
-- from four sliding logs at once: the edits' app and tenant logs, and the same team and
-- channel logs the posts' permits are in (release.lua then sees them too). Not one is taken
-- unless all four have room and none cools down; edits never count in the daily quota.
-- "now" is Redis's TIME (clock.lua).
--
-- KEYS[1] edit app log   KEYS[2] edit tenant log   KEYS[3] team log   KEYS[4] channel log
-- KEYS[5..8] cooldown keys of the same scopes, in the same order
-- ARGV[1] window   ARGV[2..5] the four limits   ARGV[6] permit id
-- Returns {"0", 0} (go), or {seconds until there may be room, the full scope: 1..4}.

local SCOPES = 4
local now, window = redis_now(), tonumber(ARGV[1])
for i = 1, SCOPES do
  local at = room_at(KEYS[i], tonumber(ARGV[1 + i]), window, now, KEYS[4 + i])
  if at > now then return {string.format('%.6f', at - now), i} end
end
for i = 1, SCOPES do
  redis.call('ZADD', KEYS[i], now, ARGV[6])
  redis.call('EXPIRE', KEYS[i], math.ceil(window) + 60)
end
return {'0', 0}
