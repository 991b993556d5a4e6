-- drop.lua: a released delivery that turned out not claimable (sent, cancelled, unknown,
-- claimed by another message...) leaves the gate: no park, and its permit, if still
-- outstanding (permits.lua: known still names it, so it was never started), is given back:
-- removed from the sliding logs and from its channel's quota reservation. A permit that was
-- started (a redelivered message of a delivery since sent) stays: it stands for a real POST.
--
-- KEYS[1..4] app, tenant, team, channel logs   KEYS[5] known hash
-- KEYS[6] the permit's quota hash (keys.permit_day)
-- ARGV[1] delivery id   ARGV[2] permit   ARGV[3] '<tenant>:<team>:<channel>'
-- Returns 1 if a permit was given back, else 0.

if give_back(KEYS[5], ARGV[1], ARGV[2], {KEYS[1], KEYS[2], KEYS[3], KEYS[4]}, ARGV[3],
             KEYS[6]) then
  return 1
end
return 0
