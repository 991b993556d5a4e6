-- enqueue.lua: put deliveries in to wait, one entry per delivery.
--
-- A delivery the gate already holds (known: 'p' queued, 'd<due>' delayed, 'r<time>'
-- released) is skipped (atomically: the whole chunk is one script): an idempotent re-send or a retry published twice costs no second
-- permit and no second quota count. With `replace` (the sweeps: Redis lost the entry, or it
-- was released long ago and never taken) it is put in whatever known says; a permit it
-- replaces that was still outstanding gives its quota reservation back.
--
-- The entries of one team go in with one RPUSH (in slices), in the order given; a team and a
-- tenant that got entries become eligible (ZADD NX, with the caller's time: Redis's, read
-- once per chunk by the caller).
--
-- KEYS[1] tenants zset   KEYS[2] known hash   KEYS[3] wake list   KEYS[4] started zset (skipped too)
-- then per team, in the order of ARGV's teams: its queue and its tenant's teams zset
-- ARGV[1] now   ARGV[2] replace ('1' | '0')   ARGV[3] the day pattern (keys.DAY: the quota
-- hash of a replaced permit's day is only known here)
-- then per team: tenant, team, n, and n times: delivery id, entry (and, with replace,
-- the channel after the id)
-- Returns how many entries went in.

local tenants_key, known_key = KEYS[1], KEYS[2]
local now, replace, DAY = ARGV[1], ARGV[2] == '1', ARGV[3]
local SLICE = 4000 -- values per RPUSH (Lua's unpack has a stack limit)
local step = replace and 3 or 2
local pushed, i, k = 0, 4, 5
local tenants = {}
while i <= #ARGV do
  local tenant, team, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local queue, teams = KEYS[k], KEYS[k + 1]
  i, k = i + 3, k + 2
  local fresh = {}
  if replace then
    for j = i, i + (n - 1) * step, step do
      local d = ARGV[j]
      local old = redis.call('HGET', known_key, d)
      if old and string.sub(old, 1, 1) == 'r' then
        local day_key = string.format(DAY, utc_date(tonumber(string.sub(old, 2))))
        unreserve(day_key, tenant .. ':' .. team .. ':' .. ARGV[j + 1])
      end
      redis.call('HSET', known_key, d, 'p')
      fresh[#fresh + 1] = ARGV[j + 2]
    end
  else
    -- What known already holds, a slice at a time (one HMGET, not a call per delivery);
    -- `seen` catches a delivery given twice in this call.
    local seen, news = {}, {}
    for from = 0, n - 1, SLICE do
      local upto = math.min(from + SLICE, n) - 1
      local ids = {}
      for k = from, upto do ids[#ids + 1] = ARGV[i + k * 2] end
      local held = redis.call('HMGET', known_key, unpack(ids))
      -- Started moments ago (start.lua): gone from known, but not waiting to be sent again.
      local started = redis.call('ZMSCORE', KEYS[4], unpack(ids))
      for k = from, upto do
        local d = ARGV[i + k * 2]
        if not held[k - from + 1] and not started[k - from + 1] and not seen[d] then
          seen[d] = true
          fresh[#fresh + 1] = ARGV[i + k * 2 + 1]
          news[#news + 1] = d
          news[#news + 1] = 'p'
        end
      end
    end
    for from = 1, #news, SLICE do
      redis.call('HSET', known_key, unpack(news, from, math.min(from + SLICE - 1, #news)))
    end
  end
  i = i + n * step
  if #fresh > 0 then
    for from = 1, #fresh, SLICE do
      redis.call('RPUSH', queue, unpack(fresh, from, math.min(from + SLICE - 1, #fresh)))
    end
    redis.call('ZADD', teams, 'NX', now, team)
    if not tenants[tenant] then
      tenants[tenant] = true
      redis.call('ZADD', tenants_key, 'NX', now, tenant)
    end
    pushed = pushed + #fresh
  end
end
if pushed > 0 then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 0)
end
return pushed
