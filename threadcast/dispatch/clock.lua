-- clock.lua: the one clock of the dispatch scripts. scripts.py puts it in front of each of
-- them, so it has no KEYS or ARGV of its own; it only defines functions.
--
-- The sliding logs compare times written by different hosts: the dispatcher issues a permit,
-- a worker confirms it right before its POST, another charges a cooldown. Were "now" the
-- caller's clock, a worker 0.2 s behind the dispatcher would record its sends 0.2 s early,
-- and the dispatcher would see the window free 0.2 s before it is (measured: 19-20 posts in
-- one second against a limit of 10). The Redis server that holds the logs is one clock for
-- every caller, so "now" is always its TIME.

-- Seconds since the epoch, with microseconds, on the Redis server's clock.
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- The UTC date holding `now`, as YYYYMMDD (the name of that day's quota hash; keys.py).
-- Howard Hinnant's civil_from_days: days since 1970-01-01 -> proleptic Gregorian date.
local function utc_date(now)
  local z = math.floor(now / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d%02d%02d', year, month, day)
end
