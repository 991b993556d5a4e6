-- quota.lua (library): each channel's daily quota, counted per UTC day on Redis's clock.
--
-- The day's hash (keys.DAY) holds, per channel '<tenant>:<team>:<channel>', the posts started
-- that day, and under 'r|<channel>' the permits released and not yet started.

-- Of the quota hashes a caller named (keys.days_around: yesterday, today and tomorrow on its
-- clock), the one that is today on Redis's clock.
local function today_of(candidates, now)
  local today = utc_date(now)
  for _, key in ipairs(candidates) do
    if string.sub(key, -#today) == today then return key end
  end
  error('the caller\'s clock is more than a day away from Redis\'s (' .. today .. ')')
end

-- 'full' when the channel's sends that day reached `daily`; 'reserved' when sends and
-- outstanding permits together do (those may still be given back); nil when there is room.
local function quota_state(day_key, where, daily)
  local sends = tonumber(redis.call('HGET', day_key, where) or '0')
  if sends >= daily then return 'full' end
  local outstanding = tonumber(redis.call('HGET', day_key, 'r|' .. where) or '0')
  if sends + outstanding >= daily then return 'reserved' end
  return nil
end

-- One send more for the channel that day.
local function count_send(day_key, where, ttl)
  redis.call('HINCRBY', day_key, where, 1)
  redis.call('EXPIRE', day_key, ttl)
end
