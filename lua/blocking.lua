-- Blocked executions (budget, quota, route) and worker registrations.
--
-- Execution side: blocked executions are runnable with elig
-- 'blocked_budget' | 'blocked_quota', in the partition's index of that name
-- scored by when they were blocked (the unblock scanner reads oldest first).

local MAX_CLAIM_BATCH, MAX_LEASE_MS = F.MAX_CLAIM_BATCH, F.MAX_LEASE_MS
local MAX_REASON_BYTES, MIN_LEASE_MS = F.MAX_REASON_BYTES, F.MIN_LEASE_MS
local WORKERS_KEY = F.WORKERS_KEY
local err, hmget, int_arg, name_arg = P.err, P.hmget, P.int_arg, P.name_arg
local name_ok, now_ms, ok, register = P.name_ok, P.now_ms, P.ok, P.register
local eid_ok, eligible_key, exec_key, idx_key = K.eid_ok, K.eligible_key, K.exec_key, K.idx_key
local tag_of = K.tag_of
local exec_target, leave_live, make_eligible = EXEC.exec_target, EXEC.leave_live, EXEC.make_eligible
local make_terminal, count_from = EXEC.make_terminal, EXEC.count_from
local read_state = EXEC.read_state
local fenced, seal = LEASE.fenced, LEASE.seal
local announce_admission, announce_blocked = ADM.announce_admission, ADM.announce_blocked
local capabilities_arg = ADM.capabilities_arg

local BLOCK_REASONS = {budget = 'blocked_budget', quota = 'blocked_quota'}
local UNBLOCKABLE = {blocked_budget = true, blocked_quota = true, blocked_route = true}

-- The reason a cancel for a breach records (within MAX_REASON_BYTES).
local function breach_reason(budget)
  return string.sub('budget breached: ' .. budget, 1, MAX_REASON_BYTES)
end

-- ff_block: the claimer found the execution not admissible: its lease ends
-- (no retry or reclaim used) and it waits in the blocked index; or, with
-- reason 'cancel' (a budget breached under the cancel policy; detail = the
-- budget), it ends cancelled.
-- KEYS: exec  ARGV: eid, lease_id, epoch, reason ('budget'|'quota'|'cancel'), detail
-- -> {1, 'blocked'|'cancelled', 0, replayed}
local function ff_block(keys, args)
  local elig = BLOCK_REASONS[args[4] or '']
  if elig == nil and args[4] ~= 'cancel' then return err('invalid_argument', 'reason:expected budget, quota or cancel') end
  local detail = args[5] or ''
  if #detail > MAX_REASON_BYTES then detail = string.sub(detail, 1, MAX_REASON_BYTES) end
  local h, e = fenced(keys, args, 'block')
  if e then return e end
  local now = now_ms()
  if elig == nil then
    -- 'cancel': a budget it draws on is breached under the cancel policy.
    make_terminal(nil, h.ek, h.tag, h.eid, h, 'cancelled', now, 'error', breach_reason(detail),
      'att_state', 'cancelled', 'fence', seal(h, 'block', 'cancelled', 0))
    return ok('cancelled', 0, 0)
  end
  leave_live(h.ek, h.tag, h.eid, h)
  redis.call('HSET', h.ek, 'phase', 'runnable', 'elig', elig, 'due', '', 'att_state', 'released',
    'blocked_on', detail, 'fence', seal(h, 'block', 'blocked', 0))
  count_from(h.tag, h, elig, now)
  redis.call('ZADD', idx_key(h.tag, elig), now, h.eid)
  announce_blocked(h.tag, now)
  return ok('blocked', 0, 0)
end

-- Validate the KEYS[1] of the unblock scanner's calls: a blocked index of a
-- partition, its tag and the eligibility it stands for, or a refusal.
local function blocked_target(keys)
  local idx = keys[1]
  local tag = tag_of(idx or '')
  local elig = tag and string.match(idx, '^ff:idx:{fp:%d+}:(blocked_%a+)$')
  if elig == nil or not UNBLOCKABLE[elig] then
    return nil, nil, nil, err('invalid_argument', 'index:KEYS[1] must be a blocked index of a partition')
  end
  return idx, tag, elig
end

-- ff_breach_cancel (unblock scanner): a budget the given blocked executions
-- draw on is breached under the cancel policy: cancelled (those still in
-- this blocked index; a stale entry is dropped).
-- KEYS: a blocked index of a partition  ARGV: budget, eid* -> {1, cancelled, repaired}
local function ff_breach_cancel(keys, args)
  local idx, tag, elig, e = blocked_target(keys)
  if e then return e end
  if not name_ok(args[1]) then return err('invalid_argument', 'budget:expected a name') end
  if #args - 1 > MAX_CLAIM_BATCH then return err('invalid_argument', 'ids:at most ' .. MAX_CLAIM_BATCH .. ' per call') end
  local now = now_ms()
  local cancelled, repaired = 0, 0
  for i = 2, #args do
    local eid = args[i]
    if eid_ok(eid, tag) and redis.call('ZSCORE', idx, eid) then
      local ek = exec_key(eid)
      local h = read_state(ek)
      if h.phase == 'runnable' and h.elig == elig then
        make_terminal(nil, ek, tag, eid, h, 'cancelled', now, 'error', breach_reason(args[1]))
        cancelled = cancelled + 1
      else
        redis.call('ZREM', idx, eid)
        repaired = repaired + 1
      end
    end
  end
  return ok(cancelled, repaired)
end

-- ff_unblock (unblock scanner): the given executions were found admissible:
-- back to eligible (those still blocked for this reason; others are skipped,
-- a stale index entry is dropped).
-- KEYS: blocked_budget or blocked_quota index of a partition  ARGV: eid*
-- -> {1, moved, repaired}
local function ff_unblock(keys, args)
  local idx, tag, elig, e = blocked_target(keys)
  if e then return e end
  if #args > MAX_CLAIM_BATCH then return err('invalid_argument', 'ids:at most ' .. MAX_CLAIM_BATCH .. ' per call') end
  local now = now_ms()
  local moved, repaired = 0, 0
  for _, eid in ipairs(args) do
    if eid_ok(eid, tag) and redis.call('ZSCORE', idx, eid) then
      local ek = exec_key(eid)
      local h = hmget(ek, 'phase', 'elig', 'lane', 'pri', 'flow')
      redis.call('ZREM', idx, eid)
      if h.phase == 'runnable' and h.elig == elig and name_ok(h.lane) then
        redis.call('HDEL', ek, 'blocked_on')
        make_eligible(ek, tag, eid, h, tonumber(h.pri) or 0, now)
        moved = moved + 1
      else
        repaired = repaired + 1
      end
    end
  end
  return ok(moved, repaired)
end

-- ff_block_route: an eligible execution needs capabilities no live worker
-- has (the claimer looked): it waits in blocked_route until one registers.
-- KEYS: exec  ARGV: eid -> {1, 'blocked'|'skipped'} ('skipped': no longer eligible)
local function ff_block_route(keys, args)
  local ek, tag, e = exec_target(keys, args[1])
  if e then return e end
  local h = hmget(ek, 'phase', 'elig', 'lane', 'flow')
  if h.phase == nil then return err('not_found', args[1]) end
  if h.phase ~= 'runnable' or h.elig ~= 'eligible' or not name_ok(h.lane) then return ok('skipped') end
  redis.call('ZREM', eligible_key(tag, h.lane), args[1])
  local now = now_ms()
  redis.call('HSET', ek, 'elig', 'blocked_route')
  count_from(tag, h, 'blocked_route', now)
  redis.call('ZADD', idx_key(tag, 'blocked_route'), now, args[1])
  announce_blocked(tag, now)
  return ok('blocked')
end

---------------------------------------------------------------------------
-- Worker registrations: one hash ff:workers, instance -> '<expires ms>;<caps>'.

-- ff_worker_register (also the heartbeat)
-- KEYS: ff:workers  ARGV: instance, ttl_ms, capabilities -> {1, expires}
local function ff_worker_register(keys, args)
  if keys[1] ~= WORKERS_KEY then return err('invalid_argument', 'workers:KEYS[1] must be ' .. WORKERS_KEY) end
  local inst, ttl, e
  inst, e = name_arg(args[1], 'worker_instance'); if e then return e end
  ttl, e = int_arg(args[2], 'ttl_ms', MIN_LEASE_MS, MAX_LEASE_MS); if e then return e end
  local _
  _, e = capabilities_arg(args[3] or ''); if e then return e end
  local now = now_ms()
  local exp = now + ttl
  local caps = args[3] or ''
  -- A heartbeat changes nothing; a worker that is new, was expired, or now
  -- has other capabilities may run work blocked for its route.
  local prev_exp, prev_caps = string.match(redis.call('HGET', WORKERS_KEY, inst) or '', '^(%d+);(.*)$')
  redis.call('HSET', WORKERS_KEY, inst, exp .. ';' .. caps)
  if prev_exp == nil or tonumber(prev_exp) < now or prev_caps ~= caps then announce_admission() end
  return ok(exp)
end

-- ff_workers_live: drop expired registrations, list the live ones.
-- KEYS: ff:workers -> {1, (instance, capabilities)*}
local function ff_workers_live(keys)
  if keys[1] ~= WORKERS_KEY then return err('invalid_argument', 'workers:KEYS[1] must be ' .. WORKERS_KEY) end
  local now = now_ms()
  local all = redis.call('HGETALL', WORKERS_KEY)
  local out = {1}
  for i = 1, #all, 2 do
    local exp, caps = string.match(all[i + 1], '^(%d+);(.*)$')
    if exp == nil or tonumber(exp) < now then
      redis.call('HDEL', WORKERS_KEY, all[i])
    else
      out[#out + 1] = all[i]; out[#out + 1] = caps
    end
  end
  return out
end

register('ff_block_route', ff_block_route)
register('ff_worker_register', ff_worker_register)
register('ff_workers_live', ff_workers_live)
register('ff_block', ff_block)
register('ff_unblock', ff_unblock)
register('ff_breach_cancel', ff_breach_cancel)
