-- Batch functions the engine's scanners call. The scanner reads a snapshot of
-- one index of one partition, picks the due members to act on, and passes
-- their ids here; each member is re-checked against its record, and, for an
-- index whose record holds no due time of its own, against the index (still
-- there, still due), so a stale snapshot, a second engine, or a repeat is
-- harmless. An index entry that disagrees with its record is repaired on the
-- spot.
--
-- KEYS: the index (or the partition's `all` set for the reconciler)
-- ARGV: filter namespace ('' = any), filter tag name ('' = none), filter tag
--       value, then the member ids (at most MAX_CLAIM_BATCH)
-- -> {1, acted, repaired, next_due_ms or -1, (id, code)*} listing only the
--    members not acted on: code 'filtered', 'malformed' or 'error:<reason>'.

local MAX_CLAIM_BATCH, PHASES, PHASE_INDEX = F.MAX_CLAIM_BATCH, F.PHASES, F.PHASE_INDEX
local RUNNABLE_INDEX = F.RUNNABLE_INDEX
local SCORED_INDEXES = F.SCORED_INDEXES
local ABSENT = F.ABSENT
local count_text, counter, err, hmget = P.count_text, P.counter, P.err, P.hmget
local name_ok, now_ms, num, register = P.name_ok, P.now_ms, P.num, P.register
local optional_fields = P.optional_fields
local eid_ok, eligible_key, exec_key = K.eid_ok, K.eligible_key, K.exec_key
local idem_prefix = K.idem_prefix
local idx_key, wp_key = K.idx_key, K.wp_key
local apply_moves, batch_key, batch_lane_key = MV.apply_moves, MV.batch_key, MV.batch_lane_key
local defer_zadd = MV.defer_zadd
local defer_zrem, new_moves, zadd_due = MV.defer_zrem, MV.new_moves, MV.zadd_due
local FLOW_HOOKS, FLOW_RECONCILE_GRACE_MS = EXEC.FLOW_HOOKS, EXEC.FLOW_RECONCILE_GRACE_MS
local WAITING_RECHECK_MS, batch_eligible_score = EXEC.WAITING_RECHECK_MS, EXEC.batch_eligible_score
local eligible_score, index_target = EXEC.eligible_score, EXEC.index_target
local leave_live, make_terminal = EXEC.leave_live, EXEC.make_terminal
local read_state, count_move = EXEC.read_state, EXEC.count_move

-- The earliest remaining score of an index, or -1.
local function next_due(index)
  local head = redis.call('ZRANGE', index, 0, 0, 'WITHSCORES')
  if head[2] then return tonumber(head[2]) end
  return -1
end

local function filter_ok(ek, ns, tag_name, tag_value)
  if ns == '' and tag_name == '' then return true end
  local h = redis.call('HMGET', ek, 'ns', 'tag.' .. tag_name)
  if ns ~= '' and (h[1] or ABSENT.ns) ~= ns then return false end
  if tag_name ~= '' and h[2] ~= tag_value then return false end
  return true
end

-- Validate the batch arguments; `act(record, tag, member, now, moves)` returns
-- 'acted', 'repaired', 'gone' (nothing to do: another engine or the owner
-- acted first), 'malformed' (the record is unusable: its entry leaves the
-- index, so it is not read again) or an error code for each due member.
-- `owner(member, tag)` names the hash the filter reads: nil for a malformed
-- member, false for none (default: the member is an execution id); a second
-- result true says the hash carries no tags (a flow's), so only the
-- namespace filters it (an instance-tag filter would leave it to nobody).
-- `by_record`: the record holds the member's due time and `act` checks it
-- (settle), so the index is not read first (a read per member, which a
-- drain would feel).
local function run_batch(keys, args, index_name, act, owner, by_record)
  local idx, tag, e = index_target(keys, index_name)
  if e then return e end
  local ns, tag_name, tag_value = args[1] or '', args[2] or '', args[3] or ''
  if (ns ~= '' and not name_ok(ns)) or (tag_name ~= '' and not name_ok(tag_name)) then
    return err('invalid_argument', 'filter:bad namespace or tag name')
  end
  if #args - 3 > MAX_CLAIM_BATCH then
    return err('invalid_argument', 'ids:at most ' .. MAX_CLAIM_BATCH .. ' per call')
  end
  local sweep = index_name == 'all'
  local filtering = ns ~= '' or tag_name ~= ''
  local now = now_ms()
  local acted, repaired = 0, 0
  local out = {1, 0, 0, -1}
  local mv = new_moves(now)
  local ids = {unpack(args, 4)}
  local present = {}
  if #ids > 0 and not by_record then
    present = redis.call(sweep and 'SMISMEMBER' or 'ZMSCORE', idx, unpack(ids))
  end
  for i, eid in ipairs(ids) do
    local score
    if by_record then
      score = now
    elseif sweep then
      score = present[i] == 1 and now or nil
    else
      score = tonumber(present[i])
    end
    -- Gone (another engine or the owner acted) or no longer due: nothing to do.
    if score ~= nil and score <= now then
      local code
      local ek, untagged
      if owner then
        ek, untagged = owner(eid, tag)
      elseif eid_ok(eid, tag) then
        ek = exec_key(eid)
      end
      if ek == nil then
        code = 'malformed'
      elseif ek and filtering and not filter_ok(ek, ns, untagged and '' or tag_name, tag_value) then
        code = 'filtered'
      else
        code = act(ek, tag, eid, now, mv)
      end
      if code == 'malformed' and not (sweep and eid_ok(eid, tag)) then
        -- Counted, and out of the index: never read again.
        redis.call(sweep and 'SREM' or 'ZREM', idx, eid)
      end
      if code == 'acted' then
        acted = acted + 1
      elseif code == 'repaired' then
        repaired = repaired + 1
      elseif code ~= 'gone' then
        out[#out + 1] = eid
        out[#out + 1] = code
      end
    end
  end
  apply_moves(mv)
  out[2], out[3] = acted, repaired
  if not sweep then out[4] = next_due(idx) end
  return out
end

-- For an index whose record holds the due time (run_batch's `by_record`): a
-- member its record says is not due now leaves the index (`due` nil) or moves
-- to the record's due time. 'repaired' when that changed the index, 'gone'
-- when the index already agreed (a stale snapshot).
local function settle(tag, name, eid, due)
  local key = idx_key(tag, name)
  if due == nil then
    return redis.call('ZREM', key, eid) == 1 and 'repaired' or 'gone'
  end
  if tonumber(redis.call('ZSCORE', key, eid)) == due then return 'gone' end
  zadd_due(tag, name, due, eid)
  return 'repaired'
end

local function batch_function(index_name, act, by_record)
  return function(keys, args) return run_batch(keys, args, index_name, act, nil, by_record) end
end

-- Purge one terminal execution (retention's batch below, and ff_delete).
local purge

-- The engine's own batch functions (their helpers are local to this block).
do

-- delayed -> eligible; the eligible score records when (FIFO from promotion).
-- (Fields are read positionally: this runs once per promoted execution.)
local function promote(ek, tag, eid, now, mv)
  local h = redis.call('HMGET', ek, 'phase', 'elig', 'lane', 'pri', 'due', 'opt')
  if h[1] == 'runnable' and h[2] == 'delayed' then
    local pri, due = num(h[4] or ABSENT.pri), num(h[5])
    local lane_key = h[3] and batch_lane_key(mv, tag, h[3])
    if due == nil or pri == nil or not lane_key then return 'malformed' end
    if due > now then return settle(tag, 'delayed', eid, due) end
    defer_zrem(mv, batch_key(mv, tag, 'delayed'), eid)
    redis.call('HSET', ek, 'elig', 'eligible', 'due', '')
    count_move(tag, h[3], optional_fields(ek, h[6], 'flow')[1] or nil, 'delayed', 'eligible', now)
    defer_zadd(mv, lane_key, batch_eligible_score(mv, pri, now), eid)
    return 'acted'
  end
  return settle(tag, 'delayed', eid, nil)
end

-- What leave_live needs of an active execution, by whether it has an
-- attempt timeout: its phase, and whether it has an attempt due (shared,
-- read only: no table per reclaimed execution).
local ACTIVE_BY_TIMEOUT = {[true] = {phase = 'active', att_due = true}, [false] = {phase = 'active'}}

-- An expired lease is taken back: eligible again (a new attempt and epoch at
-- the next claim), or failed once the reclaim limit is spent.
local function reclaim(ek, tag, eid, now, mv)
  -- (positional: this runs once per reclaimed execution)
  -- (att_timeout stands for att_due, as in lease_check; absent, it is 0)
  local v = redis.call('HMGET', ek, 'phase', 'lease_exp', 'reclaims', 'max_reclaims', 'pri', 'lane', 'att_timeout', 'opt')
  if v[1] ~= 'active' then return settle(tag, 'lease_expiry', eid, nil) end
  local exp, reclaims = num(v[2]), counter(v[3] or nil)
  local max_reclaims, pri = counter(v[4] or ABSENT.max_reclaims), num(v[5] or ABSENT.pri)
  local lane_key = v[6] and batch_lane_key(mv, tag, v[6])
  if exp == nil or reclaims == nil or max_reclaims == nil or pri == nil or not lane_key then return 'malformed' end
  if exp > now then return settle(tag, 'lease_expiry', eid, exp) end
  if reclaims < max_reclaims then
    leave_live(ek, tag, eid, ACTIVE_BY_TIMEOUT[(v[7] or ABSENT.att_timeout) ~= '0'], mv)
    -- (due is already empty: the claim left it so)
    redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'eligible', 'att_state', 'reclaimed', 'reclaims', count_text(reclaims + 1))
    count_move(tag, v[6], optional_fields(ek, v[8], 'flow')[1] or nil, 'active', 'eligible', now)
    defer_zadd(mv, lane_key, batch_eligible_score(mv, pri, now), eid)
  else
    make_terminal(mv, ek, tag, eid, read_state(ek), 'failed', now, 'att_state', 'reclaimed',
      'error', 'lease expired; reclaim limit of ' .. max_reclaims .. ' spent')
  end
  return 'acted'
end

-- An attempt that ran past its timeout: the execution expires, lease released.
local function expire_attempt(ek, tag, eid, now, mv)
  local h = read_state(ek)
  if h.phase ~= 'active' or h.att_due == nil then return settle(tag, 'attempt_timeout', eid, nil) end
  local due = num(h.att_due)
  if due == nil then return 'malformed' end
  if due > now then return settle(tag, 'attempt_timeout', eid, due) end
  make_terminal(mv, ek, tag, eid, h, 'expired', now, 'att_state', 'timed_out', 'error', 'attempt timed out')
  return 'acted'
end

-- An execution past its deadline expires, whatever its phase.
local function expire_deadline(ek, tag, eid, now, mv)
  local h = read_state(ek)
  if h.phase == nil or h.phase == 'terminal' or h.deadline == nil then return settle(tag, 'deadline', eid, nil) end
  local deadline = num(h.deadline)
  -- (leave_live needs the lane of an eligible execution)
  if deadline == nil or (h.phase == 'runnable' and h.elig == 'eligible' and not name_ok(h.lane)) then
    return 'malformed'
  end
  if deadline > now then return settle(tag, 'deadline', eid, deadline) end
  if h.phase == 'active' then
    make_terminal(mv, ek, tag, eid, h, 'expired', now, 'att_state', 'timed_out', 'error', 'execution deadline passed')
  else
    make_terminal(mv, ek, tag, eid, h, 'expired', now, 'error', 'execution deadline passed')
  end
  return 'acted'
end

-- A terminal execution past its retention: every key of it goes, at once.
function purge(ek, tag, eid)
  local h = hmget(ek, 'phase', 'idem', 'wps', 'flow', 'outcome', 'lane')
  redis.call('ZREM', idx_key(tag, 'terminal'), eid)
  if h.phase == nil then
    redis.call('SREM', idx_key(tag, 'all'), eid)
    return 'repaired'
  end
  -- Not terminal: it never belonged here (the reconciler re-indexes it).
  if h.phase ~= 'terminal' then return 'repaired' end
  if h.flow and FLOW_HOOKS.purge_blocked(tag, eid) then
    zadd_due(tag, 'terminal', now_ms() + FLOW_RECONCILE_GRACE_MS, eid)
    return 'error:dependents_pending'
  end
  -- (only a key of this partition's idempotency records: anything else is
  -- not ours to read, and may be of another type or slot)
  local prefix = idem_prefix(tag)
  if h.idem and string.sub(h.idem, 1, #prefix) == prefix and redis.call('GET', h.idem) == eid then
    redis.call('DEL', h.idem)
  end
  -- Its waitpoints (and their signals) go with it.
  for wpid in string.gmatch(h.wps or '', '[0-9a-f]+') do
    redis.call('DEL', wp_key(tag, wpid))
    redis.call('ZREM', idx_key(tag, 'pending_waitpoints'), wpid)
  end
  redis.call('SREM', idx_key(tag, 'all'), eid)
  redis.call('DEL', ek)
  -- (an ended member is no longer in its flow's live counts)
  count_move(tag, h.lane, nil, h.outcome, nil)
  if h.flow then FLOW_HOOKS.member_purged(tag, eid, h.flow, h.outcome) end
  return 'acted'
end

-- The index memberships a record's state calls for: {index key = score}.
local function expected_indexes(tag, h)
  local want = {}
  local name
  if h.phase == 'runnable' then name = RUNNABLE_INDEX[h.elig] else name = PHASE_INDEX[h.phase] end
  if name == 'eligible' then
    want[eligible_key(tag, h.lane)] = true
  elseif name == 'delayed' then
    want[idx_key(tag, name)] = num(h.due)
  elseif name == 'lease_expiry' then
    want[idx_key(tag, name)] = num(h.lease_exp)
  elseif name == 'suspension_timeout' then
    if h.susp_due then want[idx_key(tag, name)] = num(h.susp_due) end
  elseif name == 'terminal' then
    want[idx_key(tag, name)] = (num(h.ended) or 0) + (num(h.retention or ABSENT.retention) or 0)
  elseif name then
    -- (waiting and blocked: scored by their next re-check or their block)
    want[idx_key(tag, name)] = 'any'
  end
  if h.phase == 'active' and h.att_due then want[idx_key(tag, 'attempt_timeout')] = num(h.att_due) end
  if h.phase ~= 'terminal' and h.deadline then
    want[idx_key(tag, 'deadline')] = num(h.deadline)
  end
  return want
end


-- Make one execution's index memberships match its state.
local function reconcile(ek, tag, eid, now)
  local h = hmget(ek, 'phase', 'elig', 'lane', 'pri', 'due', 'lease_exp', 'att_due', 'deadline', 'ended', 'retention', 'created', 'susp_due', 'wps')
  if h.phase == nil then
    redis.call('SREM', idx_key(tag, 'all'), eid)
    for _, name in ipairs(SCORED_INDEXES) do
      redis.call('ZREM', idx_key(tag, name), eid)
    end
    return 'repaired'
  end
  if not PHASES[h.phase] or not name_ok(h.lane) then return 'malformed' end
  -- A number field that does not read as one: left to an operator.
  for _, f in ipairs({'pri', 'due', 'lease_exp', 'att_due', 'deadline', 'ended', 'retention', 'created', 'susp_due'}) do
    if h[f] and h[f] ~= '' and num(h[f]) == nil then return 'malformed' end
  end
  local want = expected_indexes(tag, h)
  local fixed = false
  local candidates = {eligible_key(tag, h.lane)}
  for _, name in ipairs(SCORED_INDEXES) do
    candidates[#candidates + 1] = idx_key(tag, name)
  end
  for _, key in ipairs(candidates) do
    local have = redis.call('ZSCORE', key, eid)
    local w = want[key]
    if w == nil and have then
      redis.call('ZREM', key, eid)
      fixed = true
    elseif w == true and not have then
      redis.call('ZADD', key, eligible_score(num(h.pri) or 0, num(h.created) or now), eid)
      fixed = true
    elseif w == 'any' and not have then
      redis.call('ZADD', key, now + WAITING_RECHECK_MS, eid)
      fixed = true
    elseif type(w) == 'number' and tonumber(have) ~= w then
      local name = string.match(key, ':([%a_]+)$')
      zadd_due(tag, name, w, eid)
      fixed = true
    end
  end
  -- Its pending waitpoints belong in the expiry index (scored by when they
  -- expire); the expiry scanner drops the ones no longer pending.
  for wpid in string.gmatch(h.wps or '', '[0-9a-f]+') do
    local w = redis.call('HMGET', wp_key(tag, wpid), 'state', 'expires')
    local exp = num(w[2])
    if w[1] == 'pending' and exp and tonumber(redis.call('ZSCORE', idx_key(tag, 'pending_waitpoints'), wpid)) ~= exp then
      zadd_due(tag, 'pending_waitpoints', exp, wpid)
      fixed = true
    end
  end
  return fixed and 'repaired' or 'acted'
end

register('ff_promote_delayed', batch_function('delayed', promote, true))
register('ff_reclaim_expired', batch_function('lease_expiry', reclaim, true))
register('ff_expire_attempts', batch_function('attempt_timeout', expire_attempt, true))
register('ff_expire_deadlines', batch_function('deadline', expire_deadline, true))
-- (a terminal record's purge time is its index score: read first)
register('ff_purge_retained', batch_function('terminal', purge))
register('ff_reconcile_indexes', batch_function('all', reconcile))

end

--- @export next_due, run_batch, settle, batch_function, purge
