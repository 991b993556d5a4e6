-- stuck.lua: of the given deliveries, those `known` says are waiting but that cannot be
-- waiting anywhere in the gate (for the orphan sweep: Redis lost part of the gate).
--
-- 'p' (in its team's queue): stuck when the queue key, the team in its tenant's teams zset
-- or the tenant in the tenants zset is missing (release keeps all three while the queue holds
-- anything). 'd<due>' (delayed): stuck when no entry of the delayed zset has that score.
-- A few O(1)/O(log n) reads per delivery, for one page of deliveries per call.
--
-- KEYS[1] known hash   KEYS[2] tenants zset   KEYS[3] delayed zset, then per delivery: its
-- team's queue and its tenant's teams zset
-- ARGV per delivery: id, tenant, team
-- Returns the ids of the stuck ones.

local stuck = {}
for i = 1, #ARGV, 3 do
  local d, tenant, team = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local queue, teams = KEYS[4 + (i - 1) / 3 * 2], KEYS[5 + (i - 1) / 3 * 2]
  local known = redis.call('HGET', KEYS[1], d)
  if known == 'p' then
    if redis.call('EXISTS', queue) == 0
        or not redis.call('ZSCORE', teams, team)
        or not redis.call('ZSCORE', KEYS[2], tenant) then
      table.insert(stuck, d)
    end
  elseif known and string.sub(known, 1, 1) == 'd' then
    local due = string.sub(known, 2)
    if redis.call('ZCOUNT', KEYS[3], due, due) == 0 then table.insert(stuck, d) end
  end
end
return stuck
