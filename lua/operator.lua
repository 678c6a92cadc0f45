-- An operator's calls: pause and resume a lane, requeue an execution that
-- ended badly, delete a terminal one now.

local READY_CHANNEL = F.READY_CHANNEL
local err, hmget, name_arg, now_ms = P.err, P.hmget, P.name_arg, P.now_ms
local num, ok, register = P.num, P.ok, P.register
local eligible_key, idx_key, paused_key, tag_of = K.eligible_key, K.idx_key, K.paused_key, K.tag_of
local idx_due = MV.idx_due
local FLOW_HOOKS, exec_target, index_eligible = EXEC.FLOW_HOOKS, EXEC.exec_target, EXEC.index_eligible
local read_state, count_move = EXEC.read_state, EXEC.count_move
local purge = SCAN.purge

-- ff_lane_pause  KEYS: the partition's paused set  ARGV: lane, 1 (pause) | 0 (resume)
-- -> {1, changed (0|1)}. Resuming a lane with eligible executions announces
-- it (workers start at once). A repeat changes nothing.
local function ff_lane_pause(keys, args)
  local tag = tag_of(keys[1] or '')
  if tag == nil or keys[1] ~= paused_key(tag) then
    return err('invalid_argument', 'lane:KEYS[1] must be a partition\'s paused set')
  end
  local lane, e = name_arg(args[1], 'lane'); if e then return e end
  if args[2] == '1' then
    return ok(redis.call('SADD', keys[1], lane))
  elseif args[2] ~= '0' then
    return err('invalid_argument', 'paused:expected 1 or 0')
  end
  local changed = redis.call('SREM', keys[1], lane)
  if changed == 1 and redis.call('ZCARD', eligible_key(tag, lane)) > 0 then
    redis.call('PUBLISH', READY_CHANNEL, lane .. ' ' .. tag)
  end
  return ok(changed)
end

-- ff_requeue  KEYS: exec  ARGV: eid -> {1, 'requeued' | 'live', phase}
-- A failed, cancelled or expired execution runs again: eligible at once, its
-- retries counted afresh; its attempts, last error and lease epoch stay (the
-- next claim is its next attempt). A flow member is refused: its end already
-- decided its dependents. A repeat finds it live and changes nothing.
local function ff_requeue(keys, args)
  local ek, tag, e = exec_target(keys, args[1])
  if e then return e end
  local eid = args[1]
  local h = read_state(ek, 'outcome', 'requeues')
  if not h.phase then return err('not_found', eid) end
  if h.phase ~= 'terminal' then return ok('live', h.phase) end
  if h.outcome ~= 'failed' and h.outcome ~= 'cancelled' and h.outcome ~= 'expired' then
    return err('invalid_state', 'only a failed, cancelled or expired execution is requeued, not ' .. (h.outcome or '?'))
  end
  if h.flow then
    return err('invalid_state', 'a flow member is not requeued: its end already decided its dependents')
  end
  local now = now_ms()
  local deadline = num(h.deadline)
  if deadline and deadline <= now then return err('invalid_state', 'its deadline has passed') end
  redis.call('ZREM', idx_key(tag, 'terminal'), eid)
  redis.call('HDEL', ek, 'outcome', 'ended')
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'eligible', 'due', '', 'retries', 0, 'reclaims', 0,
    'requeues', (tonumber(h.requeues) or 0) + 1)
  if deadline then idx_due(nil, tag, 'deadline', deadline, eid) end
  -- (no flow: a flow member is refused above)
  count_move(tag, h.lane, nil, h.outcome, 'eligible', now)
  index_eligible(tag, eid, h.lane, h.pri, now)
  return ok('requeued', 'runnable')
end

-- ff_delete  KEYS: exec  ARGV: eid -> {1, 'deleted' | 'absent'}
-- Purge a terminal execution now, as retention would. A repeat (or an
-- unknown id) answers 'absent'.
local function ff_delete(keys, args)
  local ek, tag, e = exec_target(keys, args[1])
  if e then return e end
  local h = hmget(ek, 'phase', 'flow')
  if not h.phase then return ok('absent') end
  if h.phase ~= 'terminal' then
    return err('invalid_state', 'only a terminal execution is deleted; this one is ' .. h.phase)
  end
  if h.flow and FLOW_HOOKS.purge_blocked(tag, args[1]) then
    return err('invalid_state', 'its flow dependents are still being resolved')
  end
  purge(ek, tag, args[1])
  return ok('deleted')
end

register('ff_lane_pause', ff_lane_pause)
register('ff_requeue', ff_requeue)
register('ff_delete', ff_delete)
