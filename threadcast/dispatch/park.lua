-- park.lua: put one delivery back to wait, either at the front of its team's queue (due now)
-- or in the delayed zset until `due`.
--
-- KEYS[1] delayed zset   KEYS[2] tenants zset   KEYS[3] known hash   KEYS[4] team queue
-- KEYS[5] tenant's teams zset   KEYS[6] wake list
-- ARGV[1] entry (JSON)   ARGV[2] due   ARGV[3] now   ARGV[4] tenant   ARGV[5] team
-- ARGV[6] delivery id
-- Returns 1.

local entry, due, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if due > now then
  redis.call('ZADD', KEYS[1], due, entry)
else
  redis.call('LPUSH', KEYS[4], entry)
  redis.call('ZADD', KEYS[5], 'NX', now, ARGV[5])
  redis.call('ZADD', KEYS[2], 'NX', now, ARGV[4])
end
redis.call('HSET', KEYS[3], ARGV[6], 'p')
redis.call('LPUSH', KEYS[6], '1')
redis.call('LTRIM', KEYS[6], 0, 0)
return 1
