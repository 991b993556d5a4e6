-- release.lua: hand out permits to send, fairly, within every rate limit.
--
-- Pending deliveries wait in one list per (tenant, team). A tenant is eligible when its score
-- in the tenants zset is <= now (+ a small horizon); its teams likewise in its teams zset.
-- Each turn takes the most-overdue eligible tenant, its most-overdue eligible team, pops one
-- delivery and records a permit in the sliding logs of every scope it touches: the app, the
-- tenant and the team (which bounds each of its channels), and counts it against its
-- channel's daily quota. A served tenant or team is re-scored just after "now" so the others
-- go first: round-robin between tenants, and between a tenant's teams.
--
-- Sliding log: a zset of permit times per scope. A scope is full while `limit` permits fall
-- within the last `window` seconds; it frees when the oldest of those leaves the window.
--
-- Per-tenant keys are derived from KEYS[1]'s prefix (every key shares one hash tag, so a
-- Redis Cluster keeps them in one slot).
--
-- KEYS[1] tenants zset   KEYS[2] app log   KEYS[3] limits hash   KEYS[4] cooldowns hash
-- KEYS[5] known hash     KEYS[6] delayed zset   KEYS[7] channel-day hash (today, UTC)
-- ARGV[1] now            ARGV[2] window (seconds)  ARGV[3] app limit per window
-- ARGV[4] default tenant limit  ARGV[5] default team limit  ARGV[6] default channel daily
-- ARGV[7] max permits to hand out  ARGV[8] key prefix  ARGV[9] next UTC midnight
-- ARGV[10] day-hash ttl (seconds)
-- Returns {released, held, next_wake, parked}: released = flat list of entry, permit-id
-- pairs; held = entries parked until midnight (channel quota); next_wake = when to call
-- again ("" when nothing waits); parked = how many wait in the delayed set.

local tenants_key, app_log, limits_key, cool_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local known_key, delayed_key, day_key = KEYS[5], KEYS[6], KEYS[7]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local app_limit = tonumber(ARGV[3])
local defaults = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local budget = tonumber(ARGV[7])
local prefix = ARGV[8]
local midnight = tonumber(ARGV[9])
local day_ttl = tonumber(ARGV[10])
local HORIZON = 0.001 -- served scopes are re-scored inside it: still eligible this call
local STEP = 0.000001
local FOREVER = 1e12
local BLOCKED_MIN = now + 2 * HORIZON -- a blocked scope must leave the eligible range

local function blocked_until(log, limit, cool_field)
  if limit <= 0 then return FOREVER end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', '(' .. (now - window))
  local free_at = now
  local n = redis.call('ZCARD', log)
  if n >= limit then
    local oldest = redis.call('ZRANGE', log, n - limit, n - limit, 'WITHSCORES')
    free_at = tonumber(oldest[2]) + window
  end
  local cool = tonumber(redis.call('HGET', cool_key, cool_field) or '0')
  if cool > free_at then free_at = cool end
  return free_at
end

local function tenant_limits(tenant)
  local raw = redis.call('HGET', limits_key, tenant)
  if not raw then return defaults end
  local t = cjson.decode(raw)
  return {t[1] or defaults[1], t[2] or defaults[2], t[3] or defaults[3]}
end

local released, held = {}, {}
local served = 0
local next_wake = nil
local turns = 0

while served < budget and turns < budget * 8 + 64 do
  turns = turns + 1
  local app_until = blocked_until(app_log, app_limit, 'app')
  if app_until > now then next_wake = app_until; break end
  local pick = redis.call('ZRANGEBYSCORE', tenants_key, '-inf', now + HORIZON, 'LIMIT', 0, 1)
  if #pick == 0 then
    local first = redis.call('ZRANGE', tenants_key, 0, 0, 'WITHSCORES')
    if #first > 0 then next_wake = tonumber(first[2]) end
    break
  end
  local tenant = pick[1]
  local lim = tenant_limits(tenant)
  local teams_key = prefix .. 'teams:' .. tenant
  local tenant_log = prefix .. 'log:t:' .. tenant
  local tenant_until = blocked_until(tenant_log, lim[1], 't:' .. tenant)
  if tenant_until > now then
    redis.call('ZADD', tenants_key, math.max(tenant_until, BLOCKED_MIN), tenant)
  else
    local tpick = redis.call('ZRANGEBYSCORE', teams_key, '-inf', now + HORIZON, 'LIMIT', 0, 1)
    if #tpick == 0 then
      local first = redis.call('ZRANGE', teams_key, 0, 0, 'WITHSCORES')
      if #first == 0 then
        redis.call('ZREM', tenants_key, tenant)
      else
        redis.call('ZADD', tenants_key, math.max(tonumber(first[2]), BLOCKED_MIN), tenant)
      end
    else
      local team = tpick[1]
      local queue = prefix .. 'q:' .. tenant .. ':' .. team
      local team_log = prefix .. 'log:g:' .. tenant .. ':' .. team
      local team_until = blocked_until(team_log, lim[2], 'g:' .. tenant .. ':' .. team)
      if team_until > now then
        redis.call('ZADD', teams_key, math.max(team_until, BLOCKED_MIN), team)
      else
        local entry = redis.call('LPOP', queue)
        if not entry then
          redis.call('ZREM', teams_key, team)
        else
          if redis.call('LLEN', queue) == 0 then
            redis.call('ZREM', teams_key, team)
          else
            redis.call('ZADD', teams_key, now + STEP * (served + 1), team)
          end
          local e = cjson.decode(entry)
          local channel_field = tenant .. ':' .. team .. ':' .. e.c
          local today = tonumber(redis.call('HGET', day_key, channel_field) or '0')
          if today >= lim[3] then
            redis.call('ZADD', delayed_key, midnight, entry)
            table.insert(held, entry)
          else
            local permit = e.d .. '@' .. string.format('%.6f', now)
            redis.call('ZADD', app_log, now, permit)
            redis.call('ZADD', tenant_log, now, permit)
            redis.call('ZADD', team_log, now, permit)
            redis.call('EXPIRE', tenant_log, math.ceil(window) + 60)
            redis.call('EXPIRE', team_log, math.ceil(window) + 60)
            redis.call('HINCRBY', day_key, channel_field, 1)
            redis.call('EXPIRE', day_key, day_ttl)
            redis.call('HSET', known_key, e.d, 'r' .. string.format('%.3f', now))
            table.insert(released, entry)
            table.insert(released, permit)
            served = served + 1
          end
          redis.call('ZADD', tenants_key, now + STEP * (served + #held), tenant)
        end
      end
    end
  end
end

local first_delayed = redis.call('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
if #first_delayed > 0 then
  local due = tonumber(first_delayed[2])
  if next_wake == nil or due < next_wake then next_wake = due end
end
local wake = next_wake and string.format('%.6f', next_wake) or ''
return {released, held, wake, redis.call('ZCARD', delayed_key)}
