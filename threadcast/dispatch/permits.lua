-- permits.lua (library): giving back a permit that was never started.
--
-- The `known` hash says where each delivery is: 'p' (in its team's queue), 'd<due>' (in the
-- delayed zset at score <due>, written as %.17g so the score matches exactly) or 'r<time>'
-- (released to Celery with the permit '<delivery>@<time>'; <time> is %.6f).
--
-- A permit released and not yet started is "outstanding": counted in its issue day's quota
-- hash under the field 'r|<tenant>:<team>:<channel>' until start.lua turns it into a send
-- (the field '<tenant>:<team>:<channel>' of the day of the send) or it is given back.

-- The time part of a permit ('<delivery>@<time>'), or nil.
local function permit_time(permit)
  if not permit then return nil end
  return string.match(permit, '@([0-9.]+)$')
end

-- One outstanding permit fewer in the quota hash `day_key` for the channel `where`.
local function unreserve(day_key, where)
  if redis.call('HINCRBY', day_key, 'r|' .. where, -1) <= 0 then
    redis.call('HDEL', day_key, 'r|' .. where)
  end
end

-- The permit was released and never started (known still says so): give it back, once.
-- `day_key` is the quota hash of the permit's day (keys.permit_day). Returns true if it was
-- outstanding (its logs' slot and its quota reservation are freed and the known field is
-- removed).
local function give_back(known_key, delivery, permit, logs, where, day_key)
  local at = permit_time(permit)
  if not at then return false end
  if redis.call('HGET', known_key, delivery) ~= 'r' .. at then return false end
  for _, log in ipairs(logs) do redis.call('ZREM', log, permit) end
  unreserve(day_key, where)
  redis.call('HDEL', known_key, delivery)
  return true
end
