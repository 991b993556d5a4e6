-- lease_resign.lua: compare-and-delete a leader lease on a clean shutdown.
-- KEYS[1]  the lease key
-- ARGV[1]  the holder id of the caller (host:pid:token)
-- Returns 1 if the caller held the lease and dropped it, 0 otherwise (another's lease is
-- never deleted).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
