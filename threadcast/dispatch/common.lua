-- common.lua: helpers every dispatch script may call; scripts.py puts it after clock.lua in
-- front of each script (no KEYS or ARGV of its own).
--
-- The `known` hash says where each delivery is: 'p' (in its team's queue), 'd<due>' (in the
-- delayed zset at score <due>, written as %.17g so the score matches exactly) or 'r<time>'
-- (released to Celery with the permit '<delivery>@<time>'; <time> is %.6f).
--
-- A permit released and not yet started is "outstanding": counted in its issue day's quota
-- hash under the field 'r|<tenant>:<team>:<channel>' until start.lua turns it into a send
-- (the field '<tenant>:<team>:<channel>' of the day of the send) or it is given back.

-- Whether the broadcast is cancelled (the cancelled zset: broadcast -> when the mark lapses).
local function broadcast_cancelled(cancelled_key, broadcast, now)
  local until_ = redis.call('ZSCORE', cancelled_key, broadcast)
  return until_ ~= false and until_ ~= nil and tonumber(until_) > now
end

-- The time part of a permit ('<delivery>@<time>'), or nil.
local function permit_time(permit)
  if not permit then return nil end
  local at = string.match(permit, '@([0-9.]+)$')
  return at
end

-- The permit was released and never started (known still says so): give it back, once.
-- Returns true if it was outstanding (its logs' slot and its quota reservation are freed
-- and the known field is removed).
local function give_back(known_key, delivery, permit, logs, where, prefix)
  local at = permit_time(permit)
  if not at then return false end
  if redis.call('HGET', known_key, delivery) ~= 'r' .. at then return false end
  for _, log in ipairs(logs) do redis.call('ZREM', log, permit) end
  local day_key = prefix .. 'day:' .. utc_date(tonumber(at))
  if redis.call('HINCRBY', day_key, 'r|' .. where, -1) <= 0 then
    redis.call('HDEL', day_key, 'r|' .. where)
  end
  redis.call('HDEL', known_key, delivery)
  return true
end

-- A cooldown's key (keys.cooldown): a string "until" that expires when the cooldown ends.
local function cooling_until(prefix, field)
  return tonumber(redis.call('GET', prefix .. 'cool:' .. field) or '0')
end
