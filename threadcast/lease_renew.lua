-- lease_renew.lua: compare-and-renew a leader lease.
-- KEYS[1]  the lease key
-- ARGV[1]  the holder id of the caller (host:pid:token)
-- ARGV[2]  the lease's time to live, in milliseconds
-- Returns 1 if the caller still held the lease and it was extended, 0 if it expired or
-- another process holds it (the caller must stop acting as leader at once).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
