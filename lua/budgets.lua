-- Budgets. Hash fields: every_ms, next_reset, breached (0|1), soft (0|1),
-- breached_at, hard.<dim>, soft.<dim>, use.<dim>, reset_id (the last ff_budget_reset's id).

local MAX_DURATION_MS, WAKE_CHANNEL = F.MAX_DURATION_MS, F.WAKE_CHANNEL
local err, hex32_ok, hmget, int_arg = P.err, P.hex32_ok, P.hmget, P.int_arg
local name_ok = P.name_ok
local now_ms, ok, register, register_ro = P.now_ms, P.ok, P.register, P.register_ro
local admission_key, eid_ok, idx_key = K.admission_key, K.eid_ok, K.idx_key
local next_due = SCAN.next_due
local MAX_DIMENSIONS, MAX_SCAN_COUNT = ADM.MAX_DIMENSIONS, ADM.MAX_SCAN_COUNT
local MAX_USAGE_DELTA, SEEN_TTL_MS = ADM.MAX_USAGE_DELTA, ADM.SEEN_TTL_MS
local announce_admission, named_target = ADM.announce_admission, ADM.named_target
local part_tag = ADM.part_tag

-- Does usage reach a hard limit (breached) / a soft limit (soft)?
-- (core/src/admission.rs `breached`.)
local function budget_marks(bk)
  local all = redis.call('HGETALL', bk)
  local f = {}
  for i = 1, #all, 2 do f[all[i]] = all[i + 1] end
  local hard, soft = '0', '0'
  for k, v in pairs(f) do
    local dim = string.match(k, '^hard%.(.+)$')
    if dim and (tonumber(f['use.' .. dim]) or 0) >= (tonumber(v) or math.huge) then hard = '1' end
    dim = string.match(k, '^soft%.(.+)$')
    if dim and (tonumber(f['use.' .. dim]) or 0) >= (tonumber(v) or math.huge) then soft = '1' end
  end
  return hard, soft, f
end

-- Set the breach markers from usage; true when one changed.
local function mark_budget(bk, now)
  local hard, soft, f = budget_marks(bk)
  if f.breached == hard and f.soft == soft then return false end
  redis.call('HSET', bk, 'breached', hard, 'soft', soft)
  if hard == '1' and f.breached ~= '1' then redis.call('HSET', bk, 'breached_at', now) end
  if hard == '0' and f.breached == '1' then announce_admission() end
  -- Under the cancel policy the unblock scanner cancels what waits on it.
  if hard == '1' and f.breached ~= '1' and f.on_breach == 'cancel' then announce_admission() end
  return true
end

-- Schedule a budget's next reset at `due`; the reset scanner is told when it
-- becomes the partition's earliest.
local function schedule_reset(tag, bk, name, due)
  local resets = idx_key(tag, 'resets')
  local head = redis.call('ZRANGE', resets, 0, 0, 'WITHSCORES')
  redis.call('ZADD', resets, due, name)
  redis.call('HSET', bk, 'next_reset', due)
  if head[2] == nil or due < tonumber(head[2]) then
    redis.call('PUBLISH', WAKE_CHANNEL, 'resets ' .. tag .. ' ' .. due)
  end
end

-- What a hard breach does to the executions drawing on the budget: 'block'
-- them until it clears, or 'cancel' the pending ones (those blocked on it,
-- and each one a claim hands out while it is breached).
local BREACH_POLICIES = {block = true, cancel = true}

-- ff_budget_define: create or replace a budget's limits (usage is kept).
-- KEYS: budget  ARGV: name, reset_every_ms (0 = never), ndims, (dim, hard, soft)* [, on_breach]
-- (a limit of 0 = none; on_breach 'block' (default) | 'cancel') -> {1, 'created'|'updated', breached}
local function ff_budget_define(keys, args)
  local bk, tag, name, e = named_target(keys, args, 'budget', 'b')
  if e then return e end
  local every, n
  every, e = int_arg(args[2], 'reset_every_ms', 0, MAX_DURATION_MS); if e then return e end
  n, e = int_arg(args[3], 'dimensions', 0, MAX_DIMENSIONS); if e then return e end
  if #args ~= 3 + 3 * n and #args ~= 4 + 3 * n then return err('invalid_argument', 'dimensions:expected ' .. n .. ' (dim, hard, soft) triples') end
  local policy = args[4 + 3 * n] or 'block'
  if not BREACH_POLICIES[policy] then return err('invalid_argument', 'on_breach:expected block or cancel') end
  local limits = {}
  for i = 0, n - 1 do
    local dim = args[4 + 3 * i]
    if not name_ok(dim) then return err('invalid_argument', 'dimension:bad name') end
    local hard, soft
    hard, e = int_arg(args[5 + 3 * i], 'hard', 0, MAX_USAGE_DELTA); if e then return e end
    soft, e = int_arg(args[6 + 3 * i], 'soft', 0, MAX_USAGE_DELTA); if e then return e end
    limits[#limits + 1] = {dim, hard, soft}
  end
  local now = now_ms()
  local existed = redis.call('EXISTS', bk) == 1
  local old = redis.call('HKEYS', bk)
  for _, k in ipairs(old) do
    if string.find(k, '^hard%.') or string.find(k, '^soft%.') then redis.call('HDEL', bk, k) end
  end
  local was_cancel = redis.call('HGET', bk, 'on_breach') == 'cancel'
  redis.call('HSET', bk, 'name', name, 'every_ms', every, 'on_breach', policy)
  for _, l in ipairs(limits) do
    if l[2] > 0 then redis.call('HSET', bk, 'hard.' .. l[1], l[2]) end
    if l[3] > 0 then redis.call('HSET', bk, 'soft.' .. l[1], l[3]) end
  end
  if not existed then redis.call('HSET', bk, 'breached', '0', 'soft', '0') end
  mark_budget(bk, now)
  -- Breached before and now under the cancel policy: what waits on it goes.
  if policy == 'cancel' and not was_cancel and redis.call('HGET', bk, 'breached') == '1' then
    announce_admission()
  end
  redis.call('SADD', idx_key(tag, 'budgets'), name)
  local resets = idx_key(tag, 'resets')
  if every > 0 then
    local due = redis.call('ZSCORE', resets, name)
    if not due or tonumber(due) > now + every then schedule_reset(tag, bk, name, now + every) end
  else
    redis.call('ZREM', resets, name)
    redis.call('HDEL', bk, 'next_reset')
  end
  return ok(existed and 'updated' or 'created', tonumber(redis.call('HGET', bk, 'breached')))
end

-- ff_report_usage: add an attempt's usage, once per (execution, attempt, seq):
-- a report whose seq is not above the last applied one of its attempt is a
-- duplicate (a retried call after a lost reply) and changes nothing.
-- KEYS: budget  ARGV: name, eid, attempt, seq, ndims, (dim, delta)*
-- -> {1, 'applied'|'duplicate', breached, soft}
local function ff_report_usage(keys, args)
  local bk, _, _, e = named_target(keys, args, 'budget', 'b')
  if e then return e end
  local eid = args[2]
  local etag = string.match(eid or '', '^({fp:%d+}):')
  if etag == nil or not eid_ok(eid, etag) then return err('invalid_argument', 'execution:expected an execution id') end
  local att, seq, n
  att, e = int_arg(args[3], 'attempt', 1, 9007199254740991); if e then return e end
  seq, e = int_arg(args[4], 'seq', 1, 9007199254740991); if e then return e end
  n, e = int_arg(args[5], 'dimensions', 1, MAX_DIMENSIONS); if e then return e end
  if #args ~= 5 + 2 * n then return err('invalid_argument', 'dimensions:expected ' .. n .. ' (dim, delta) pairs') end
  for i = 0, n - 1 do
    if not name_ok(args[6 + 2 * i]) then return err('invalid_argument', 'dimension:bad name') end
    local _
    _, e = int_arg(args[7 + 2 * i], 'delta', 0, MAX_USAGE_DELTA); if e then return e end
  end
  if redis.call('EXISTS', bk) == 0 then return err('not_found', args[1]) end
  local seen = bk .. ':seen'
  local field = eid .. ':' .. att
  local last = tonumber(redis.call('HGET', seen, field) or '0') or 0
  if seq <= last then
    local h = hmget(bk, 'breached', 'soft')
    return ok('duplicate', tonumber(h.breached) or 0, tonumber(h.soft) or 0)
  end
  for i = 0, n - 1 do
    redis.call('HINCRBY', bk, 'use.' .. args[6 + 2 * i], args[7 + 2 * i])
  end
  redis.call('HSET', seen, field, seq)
  redis.call('PEXPIRE', seen, SEEN_TTL_MS)
  mark_budget(bk, now_ms())
  local h = hmget(bk, 'breached', 'soft')
  return ok('applied', tonumber(h.breached) or 0, tonumber(h.soft) or 0)
end

-- Zero a budget's usage and clear its markers; `...`: more field/value pairs to store.
local function reset_budget(bk, ...)
  local was = redis.call('HGET', bk, 'breached')
  local names = redis.call('HKEYS', bk)
  for _, k in ipairs(names) do
    if string.find(k, '^use%.') then redis.call('HDEL', bk, k) end
  end
  redis.call('HSET', bk, 'breached', '0', 'soft', '0', ...)
  if was == '1' then announce_admission() end
end

-- ff_budget_reset: reset now (usage to zero).
-- KEYS: budget  ARGV: name [, reset id (32 hex)] -> {1, 'reset'|'repeat'}
-- The reset id (the caller's, fresh per reset) is kept as `reset_id`: the
-- same reset sent again (its reply lost) is answered 'repeat' and does not
-- zero the usage reported since.
local function ff_budget_reset(keys, args)
  local bk, _, _, e = named_target(keys, args, 'budget', 'b')
  if e then return e end
  local rid = args[2] or ''
  if rid ~= '' and not hex32_ok(rid) then return err('invalid_argument', 'reset_id:expected 32 hex digits') end
  if redis.call('EXISTS', bk) == 0 then return err('not_found', args[1]) end
  if rid == '' then
    reset_budget(bk)
  else
    if redis.call('HGET', bk, 'reset_id') == rid then return ok('repeat') end
    reset_budget(bk, 'reset_id', rid)
  end
  return ok('reset')
end

-- ff_budget_get  KEYS: budget  ARGV: name -> {1, now, field, value, ...}
local function ff_budget_get(keys, args)
  local bk, _, _, e = named_target(keys, args, 'budget', 'b')
  if e then return e end
  local all = redis.call('HGETALL', bk)
  if #all == 0 then return err('not_found', args[1]) end
  local out = {1, now_ms()}
  for i = 1, #all do out[i + 2] = all[i] end
  return out
end

-- The earliest score of an index, or -1.
local function head_score(index)
  local head = redis.call('ZRANGE', index, 0, 0, 'WITHSCORES')
  if head[2] then return tonumber(head[2]) end
  return -1
end

-- ff_budget_resets (budget reset scanner): reset the budgets of one partition
-- whose reset is due, and schedule their next one on the same grid.
-- KEYS: the partition's resets index  ARGV: limit -> {1, reset, next_due or -1}
local function ff_budget_resets(keys, args)
  local idx = keys[1]
  local tag = part_tag(idx, 'b')
  if tag == nil or idx ~= idx_key(tag, 'resets') then
    return err('invalid_argument', 'index:KEYS[1] must be the resets index of a budget partition')
  end
  local limit, e = int_arg(args[1], 'limit', 1, MAX_SCAN_COUNT)
  if e then return e end
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  local done = 0
  for i = 1, #due, 2 do
    local name, at = due[i], tonumber(due[i + 1])
    local bk = admission_key('budget', tag, name)
    local every = name_ok(name) and tonumber(redis.call('HGET', bk, 'every_ms') or '0') or 0
    if every and every > 0 then
      reset_budget(bk)
      -- Next due on the grid of the first (core/src/admission.rs next_reset).
      local next_due = at + (math.floor((now - at) / every) + 1) * every
      redis.call('ZADD', idx, next_due, name)
      redis.call('HSET', bk, 'next_reset', next_due)
      done = done + 1
    else
      redis.call('ZREM', idx, name)
    end
  end
  return ok(done, head_score(idx))
end

-- The reconcilers' common start: check KEYS[1] is the `name` index of a
-- partition of `letter`'s family and ARGV is (cursor, count); one SSCAN step.
-- -> tag, now, {next_cursor, names} or nil, nil, nil, refusal
local function reconcile_step(keys, args, letter, name, what)
  local idx = keys[1]
  local tag = part_tag(idx, letter)
  if tag == nil or idx ~= idx_key(tag, name) then
    return nil, nil, nil, err('invalid_argument', 'index:KEYS[1] must be the ' .. name .. ' index of a ' .. what .. ' partition')
  end
  local cursor = args[1]
  if type(cursor) ~= 'string' or not string.find(cursor, '^%d+$') then
    return nil, nil, nil, err('invalid_argument', 'cursor:expected digits')
  end
  local count, e = int_arg(args[2], 'count', 1, MAX_SCAN_COUNT)
  if e then return nil, nil, nil, e end
  return tag, now_ms(), redis.call('SSCAN', idx, cursor, 'COUNT', count)
end

-- ff_budget_reconcile (budget reconciler): one SSCAN step over a budget
-- partition's budgets: breach markers made to match usage against limits,
-- reset schedules restored, names of deleted budgets dropped.
-- KEYS: the partition's budgets index  ARGV: cursor, count
-- -> {1, next_cursor, checked, repaired}
local function ff_budget_reconcile(keys, args)
  local tag, now, step, bad = reconcile_step(keys, args, 'b', 'budgets', 'budget')
  if bad then return bad end
  local idx = keys[1]
  local checked, repaired = 0, 0
  local resets = idx_key(tag, 'resets')
  for _, name in ipairs(step[2]) do
    checked = checked + 1
    local bk = admission_key('budget', tag, name)
    if not name_ok(name) or redis.call('EXISTS', bk) == 0 then
      redis.call('SREM', idx, name)
      repaired = repaired + 1
    else
      local fixed = mark_budget(bk, now)
      local every = tonumber(redis.call('HGET', bk, 'every_ms') or '0') or 0
      if every > 0 and not redis.call('ZSCORE', resets, name) then
        schedule_reset(tag, bk, name, now + every)
        fixed = true
      end
      if fixed then repaired = repaired + 1 end
    end
  end
  return ok(step[1], checked, repaired)
end

register('ff_budget_define', ff_budget_define)
register('ff_report_usage', ff_report_usage)
register('ff_budget_reset', ff_budget_reset)
register_ro('ff_budget_get', ff_budget_get)
register('ff_budget_resets', ff_budget_resets)
register('ff_budget_reconcile', ff_budget_reconcile)

--- @export reconcile_step
