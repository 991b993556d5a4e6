-- release.lua: hand out permits to send, fairly, within every rate limit.
--
-- Pending deliveries wait in one list per (tenant, team). A tenant is eligible when its score
-- in the tenants zset is <= now (+ a small horizon); its teams likewise in its teams zset.
-- Each turn takes the most-overdue eligible tenant, its most-overdue eligible team, pops one
-- delivery and records a permit in the sliding logs of every scope it touches: the app, the
-- tenant, the team and the channel, and counts it against its channel's daily quota. A served
-- tenant or team is re-scored just after "now" so the others go first: round-robin between
-- tenants, and between a tenant's teams.
--
-- A team's queue mixes channels, so the channel is checked once the delivery is popped. One
-- whose channel is full (or cooling down) is parked in the delayed zset until the channel
-- frees, and the team goes on with its next delivery instead of waiting behind it. So a
-- team's deliveries may leave out of queue order: of two broadcasts to one channel back to
-- back, the second waits a window while the team's other channels go on. Deliveries of one
-- channel parked in one call are spread a window apart per `limit` of them, so they do not
-- all come back at once only to be parked again.
--
-- Sliding log: a zset of permit times per scope. A scope is full while `limit` permits fall
-- within the last `window` seconds; it frees when the oldest of those leaves the window.
-- "now" is Redis's TIME (clock.lua), as in every dispatch script; so is the UTC day whose
-- hash counts the channels' posts against their daily quota.
--
-- Per-tenant, per-team and per-channel keys and the day's quota hash are only known here
-- (which tenant, team and channel a turn serves, and Redis's day): they are formatted from
-- the patterns keys.py passes after the arguments (keys.patterns).
--
-- A delivery of a cancelled broadcast (the cancelled zset) is dropped when popped, with no
-- permit and no quota count, and its known field removed; at most DROP_MAX per call, so a
-- cancelled million leaves in bounded slices, never blocking Redis for long.
--
-- The daily quota counts sends (start.lua) plus the permits released and not yet started
-- (permits.lua): a delivery whose channel's sends reached the quota is held until midnight;
-- one that only outstanding permits block waits a window (they may still be given back).
-- Cooldowns are keys of their own (keys.cooldown) that expire when they end.
--
-- KEYS[1] tenants zset   KEYS[2] app log   KEYS[3] limits hash   KEYS[4] cancelled zset
-- KEYS[5] known hash     KEYS[6] delayed zset   KEYS[7] the app's cooldown
-- ARGV[1] window (seconds)  ARGV[2] app limit per window  ARGV[3] default tenant limit
-- ARGV[4] default team limit  ARGV[5] default channel daily  ARGV[6] default channel limit
-- ARGV[7] max permits to hand out  ARGV[8] day-hash ttl (seconds)
-- ARGV[9..17] the key patterns: teams, queue, tenant log, team log, channel log, tenant
-- cooldown, team cooldown, channel cooldown, day
-- Returns {released, held, next_wake, parked, now}: released = flat list of entry, permit-id
-- pairs; held = entries parked until midnight (channel quota); next_wake = when to call
-- again ("" when nothing waits); parked = how many wait in the delayed set; now = when the
-- permits were issued. Times are strings: a Lua number reaches the caller as an integer.

local tenants_key, app_log, limits_key, cancelled_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local known_key, delayed_key, app_cool = KEYS[5], KEYS[6], KEYS[7]
local now = redis_now()
local window = tonumber(ARGV[1])
local app_limit = tonumber(ARGV[2])
local defaults = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local budget = tonumber(ARGV[7])
local day_ttl = tonumber(ARGV[8])
local TEAMS, QUEUE, TENANT_LOG, TEAM_LOG, CHANNEL_LOG = ARGV[9], ARGV[10], ARGV[11], ARGV[12],
  ARGV[13]
local TENANT_COOL, TEAM_COOL, CHANNEL_COOL, DAY = ARGV[14], ARGV[15], ARGV[16], ARGV[17]
local day_key = string.format(DAY, utc_date(now))
local midnight = (math.floor(now / 86400) + 1) * 86400
local LOG_TTL = math.ceil(window) + 60
local HORIZON = 0.001 -- served scopes are re-scored inside it: still eligible this call
local STEP = 0.000001
local BLOCKED_MIN = now + 2 * HORIZON -- a blocked scope must leave the eligible range
local DROP_MAX = 2000 -- cancelled entries dropped per call at most
local NOW_TEXT = string.format('%.6f', now)

local released, held = {}, {}
local served = 0
local moved = 0 -- deliveries popped (served, held or parked): orders the re-scores
local channel_parked = {} -- channel -> deliveries parked for it in this call
local next_wake = nil
local drops = 0
local cancelled = {} -- broadcast -> bool, looked up once per call
redis.call('ZREMRANGEBYSCORE', cancelled_key, '-inf', now)

local function is_cancelled(broadcast)
  local found = cancelled[broadcast]
  if found == nil then
    found = broadcast_cancelled(cancelled_key, broadcast, now)
    cancelled[broadcast] = found
  end
  return found
end

-- {tenant, team, channel daily, channel} limits; a list published before a field existed
-- lacks it and takes the default.
local function tenant_limits(tenant)
  local raw = redis.call('HGET', limits_key, tenant)
  if not raw then return defaults end
  local t = cjson.decode(raw)
  return {t[1] or defaults[1], t[2] or defaults[2], t[3] or defaults[3], t[4] or defaults[4]}
end

local function delay(entry, e, due)
  redis.call('ZADD', delayed_key, due, entry)
  redis.call('HSET', known_key, e.d, 'd' .. string.format('%.17g', due))
end

local function issue(entry, e, logs, where)
  local permit = e.d .. '@' .. NOW_TEXT
  redis.call('ZADD', app_log, now, permit)
  for _, log in ipairs(logs) do
    redis.call('ZADD', log, now, permit)
    redis.call('EXPIRE', log, LOG_TTL)
  end
  -- Outstanding until start.lua counts the send (or the permit is given back).
  redis.call('HINCRBY', day_key, 'r|' .. where, 1)
  redis.call('EXPIRE', day_key, day_ttl)
  redis.call('HSET', known_key, e.d, 'r' .. NOW_TEXT)
  table.insert(released, entry)
  table.insert(released, permit)
  served = served + 1
end

-- A popped delivery: held for its channel's daily quota, parked until its channel frees,
-- or released.
local function dispatch_entry(entry, e, tenant, team, lim, tenant_log, team_log)
  local where = tenant .. ':' .. team .. ':' .. e.c
  local quota = quota_state(day_key, where, lim[3])
  if quota == 'full' then
    delay(entry, e, midnight)
    table.insert(held, entry)
    return
  elseif quota == 'reserved' then
    -- Permits not yet started fill the quota: they may still be given back.
    delay(entry, e, now + window)
    return
  end
  local channel_log = string.format(CHANNEL_LOG, tenant, team, e.c)
  local channel_until = room_at(channel_log, lim[4], window, now,
    string.format(CHANNEL_COOL, tenant, team, e.c))
  if channel_until > now then
    local waiting = channel_parked[where] or 0
    channel_parked[where] = waiting + 1
    local due = channel_until + math.floor(waiting / lim[4]) * window
    delay(entry, e, due)
  else
    issue(entry, e, {tenant_log, team_log, channel_log}, where)
  end
end

local function serve_team(tenant, lim, teams_key, team, tenant_log)
  local queue = string.format(QUEUE, tenant, team)
  local team_log = string.format(TEAM_LOG, tenant, team)
  local team_until = room_at(team_log, lim[2], window, now, string.format(TEAM_COOL, tenant, team))
  if team_until > now then
    redis.call('ZADD', teams_key, math.max(team_until, BLOCKED_MIN), team)
    return
  end
  local entry, e
  repeat
    entry = redis.call('LPOP', queue)
    if not entry then break end
    e = cjson.decode(entry)
    if is_cancelled(e.b) then
      -- Its broadcast was cancelled: it leaves without a permit or a quota count.
      if redis.call('HGET', known_key, e.d) == 'p' then redis.call('HDEL', known_key, e.d) end
      drops = drops + 1
      entry = nil
    end
  until entry or drops >= DROP_MAX
  if not entry then
    if redis.call('LLEN', queue) == 0 then redis.call('ZREM', teams_key, team) end
    return
  end
  moved = moved + 1
  if redis.call('LLEN', queue) == 0 then
    redis.call('ZREM', teams_key, team)
  else
    redis.call('ZADD', teams_key, now + STEP * moved, team)
  end
  dispatch_entry(entry, e, tenant, team, lim, tenant_log, team_log)
  redis.call('ZADD', tenants_key, now + STEP * moved, tenant)
end

local function serve_tenant(tenant)
  local lim = tenant_limits(tenant)
  local teams_key = string.format(TEAMS, tenant)
  local tenant_log = string.format(TENANT_LOG, tenant)
  local tenant_until = room_at(tenant_log, lim[1], window, now,
    string.format(TENANT_COOL, tenant))
  -- A zero channel limit lets none of the tenant's deliveries go: hold the tenant itself, as
  -- a zero tenant limit does, rather than pop and park each delivery for ever.
  if lim[4] <= 0 then tenant_until = FOREVER end
  if tenant_until > now then
    redis.call('ZADD', tenants_key, math.max(tenant_until, BLOCKED_MIN), tenant)
    return
  end
  local tpick = redis.call('ZRANGEBYSCORE', teams_key, '-inf', now + HORIZON, 'LIMIT', 0, 1)
  if #tpick > 0 then
    serve_team(tenant, lim, teams_key, tpick[1], tenant_log)
    return
  end
  local first = redis.call('ZRANGE', teams_key, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', tenants_key, tenant)
  else
    redis.call('ZADD', tenants_key, math.max(tonumber(first[2]), BLOCKED_MIN), tenant)
  end
end

local turns, max_turns = 0, budget * 8 + 64
while served < budget and turns < max_turns and drops < DROP_MAX do
  turns = turns + 1
  local app_until = room_at(app_log, app_limit, window, now, app_cool)
  if app_until > now then next_wake = app_until; break end
  local pick = redis.call('ZRANGEBYSCORE', tenants_key, '-inf', now + HORIZON, 'LIMIT', 0, 1)
  if #pick == 0 then
    local first = redis.call('ZRANGE', tenants_key, 0, 0, 'WITHSCORES')
    if #first > 0 then next_wake = tonumber(first[2]) end
    break
  end
  serve_tenant(pick[1])
end
-- Out of turns with work still eligible (deliveries parked for their channel take turns
-- without being served): the caller should come back at once, not sleep.
if turns >= max_turns or drops >= DROP_MAX then next_wake = now end

local first_delayed = redis.call('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
if #first_delayed > 0 then
  local due = tonumber(first_delayed[2])
  if next_wake == nil or due < next_wake then next_wake = due end
end
local wake = next_wake and string.format('%.6f', next_wake) or ''
return {released, held, wake, redis.call('ZCARD', delayed_key), string.format('%.6f', now)}
