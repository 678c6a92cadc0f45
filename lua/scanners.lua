-- Batch functions the engine's scanners call: each acts on the due members of
-- one index of one partition (at most `max` per call, so a call stays short)
-- and answers {1, acted, next_due_ms or -1}. Every member is re-checked
-- against its record; an index entry that disagrees with the record is
-- repaired on the spot, so a stale entry is never read twice.

-- The earliest remaining score of an index, or -1.
local function next_due(index)
  local head = redis.call('ZRANGE', index, 0, 0, 'WITHSCORES')
  if head[2] then return tonumber(head[2]) end
  return -1
end

local function batch_target(keys, args, index_name)
  local idx = keys[1]
  local tag = tag_of(idx or '')
  if tag == nil or idx ~= idx_key(tag, index_name) then
    return nil, nil, nil, err('invalid_argument', 'index:KEYS[1] must be the ' .. index_name .. ' index of a partition')
  end
  local max, e = int_arg(args[1], 'max', 1, MAX_CLAIM_BATCH)
  if e then return nil, nil, nil, e end
  return idx, tag, max
end

-- ff_promote_delayed  KEYS: delayed index  ARGV: max
-- Due delayed executions become eligible (in due order).
local function ff_promote_delayed(keys, args)
  local idx, tag, max, e = batch_target(keys, args, 'delayed')
  if e then return e end
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'WITHSCORES', 'LIMIT', 0, max)
  local acted = 0
  for i = 1, #due, 2 do
    local eid, score = due[i], tonumber(due[i + 1])
    local ek = exec_key(eid)
    local h = hmget(ek, 'phase', 'elig', 'lane', 'pri')
    redis.call('ZREM', idx, eid)
    if eid_ok(eid, tag) and h.phase == 'runnable' and h.elig == 'delayed' then
      make_eligible(ek, tag, eid, h.lane, tonumber(h.pri) or 0, score)
      acted = acted + 1
    end
  end
  return ok(acted, next_due(idx))
end

-- ff_reclaim_expired  KEYS: lease_expiry index  ARGV: max
-- Expired leases are taken back: eligible again (a new attempt and epoch at
-- the next claim), or failed once the reclaim limit is spent.
local function ff_reclaim_expired(keys, args)
  local idx, tag, max, e = batch_target(keys, args, 'lease_expiry')
  if e then return e end
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'LIMIT', 0, max)
  local acted = 0
  for _, eid in ipairs(due) do
    local ek = exec_key(eid)
    local h = hmget(ek, 'phase', 'lease_exp', 'lane', 'pri', 'reclaims', 'max_reclaims')
    if not eid_ok(eid, tag) or h.phase ~= 'active' then
      redis.call('ZREM', idx, eid)
    elseif tonumber(h.lease_exp or '0') > now then
      redis.call('ZADD', idx, h.lease_exp, eid)
    else
      release_lease(ek)
      redis.call('ZREM', idx, eid)
      redis.call('ZREM', idx_key(tag, 'attempt_timeout'), eid)
      redis.call('HSET', ek, 'att_state', 'reclaimed')
      local reclaims = tonumber(h.reclaims or '0')
      if reclaims < tonumber(h.max_reclaims or '0') then
        redis.call('HSET', ek, 'reclaims', reclaims + 1)
        make_eligible(ek, tag, eid, h.lane, tonumber(h.pri) or 0, now)
      else
        redis.call('HSET', ek, 'error', 'lease expired; reclaim limit of ' .. (h.max_reclaims or '0') .. ' spent')
        make_terminal(ek, tag, eid, h.lane, 'failed', now)
      end
      acted = acted + 1
    end
  end
  return ok(acted, next_due(idx))
end

redis.register_function('ff_promote_delayed', ff_promote_delayed)
redis.register_function('ff_reclaim_expired', ff_reclaim_expired)
