-- marks.lua (library): a broadcast's cancellation mark.

-- Whether the broadcast is cancelled (the cancelled zset: broadcast -> when the mark lapses).
local function broadcast_cancelled(cancelled_key, broadcast, now)
  local until_ = redis.call('ZSCORE', cancelled_key, broadcast)
  return until_ ~= false and until_ ~= nil and tonumber(until_) > now
end
