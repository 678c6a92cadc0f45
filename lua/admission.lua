-- Admission: budgets ({b:M} partitions), quotas ({q:K} partitions), and the
-- two execution-side moves admission needs (block, unblock).
--
-- An execution names the budgets and quotas it draws on at create (field
-- `adm` = '<budget,...>;<quota,...>'). Its own calls stay on its {fp:N} slot;
-- budgets and quotas are other slots, so admission is a second call made by
-- the claimer right after ff_claim (ff_admit per quota, a breach read per
-- budget) and, when refused, a fenced ff_block on the execution's slot. The
-- engine's unblock scanner reads budgets and quotas, then moves executions
-- now admissible back with ff_unblock (single-slot again).

local MAX_ADMISSION_NAMES = 8
local MAX_DIMENSIONS = 16
local MAX_USAGE_DELTA = 1000000000000000 -- 1e15: keeps counters exact in Lua's doubles
-- Applied-report records of a budget are forgotten after a day without reports.
local SEEN_TTL_MS = 24 * 3600 * 1000
local MAX_SCAN_COUNT = 1000
local MAX_CAPABILITIES = 64
local WORKERS_KEY = 'ff:workers'

-- Tell the engine's unblock scanner that blocked executions may now be
-- admissible (a breach cleared, a quota place freed or grown, a worker with
-- new capabilities): it re-checks the partitions that hold blocked ones.
local function announce_admission()
  redis.call('PUBLISH', WAKE_CHANNEL, 'admission - 0')
end

-- Tell it an execution of partition `tag` was just blocked: re-checked at
-- once, so a change announced between the claimer's check and the block is
-- not missed.
local function announce_blocked(tag, now)
  redis.call('PUBLISH', WAKE_CHANNEL, 'blocked ' .. tag .. ' ' .. now)
end

local function part_tag(key, prefix)
  return string.match(key or '', '{' .. prefix .. ':%d+}')
end

-- KEYS[1] must be ff:<kind>:{<prefix>:N}:<name> and ARGV[1] the name.
local function named_target(keys, args, kind, prefix)
  local key, name = keys[1], args[1]
  local tag = part_tag(key, prefix)
  if tag == nil or not name_ok(name) or key ~= 'ff:' .. kind .. ':' .. tag .. ':' .. name then
    return nil, nil, nil, err('invalid_argument', kind .. ':KEYS[1] must be ff:' .. kind .. ':<partition>:<name> and match ARGV[1]')
  end
  return key, tag, name
end

-- A list of names separated by ',' ('' = none), at most MAX_ADMISSION_NAMES.
local function names_arg(v, what)
  if v == '' then return true end
  local n = 0
  for part in string.gmatch(v .. ',', '([^,]*),') do
    n = n + 1
    if not name_ok(part) or n > MAX_ADMISSION_NAMES then
      return nil, err('invalid_argument', what .. ':expected up to ' .. MAX_ADMISSION_NAMES .. ' names separated by commas')
    end
  end
  return true
end

-- ff_create's admission arguments -> the `adm` field value, or nil (none).
admission_arg = function(budgets, quotas, caps)
  budgets, quotas, caps = budgets or '', quotas or '', caps or ''
  local _, e = names_arg(budgets, 'budgets'); if e then return nil, e end
  _, e = names_arg(quotas, 'quotas'); if e then return nil, e end
  _, e = names_arg(caps, 'capabilities'); if e then return nil, e end
  if budgets == '' and quotas == '' and caps == '' then return nil end
  return budgets .. ';' .. quotas .. ';' .. caps
end

-- A worker's capabilities ('a,b') -> a set, or nil and a refusal.
capabilities_arg = function(v)
  if type(v) ~= 'string' then return {} end
  local set, n = {}, 0
  for part in string.gmatch(v, '([^,]+)') do
    n = n + 1
    if not name_ok(part) or n > MAX_CAPABILITIES then
      return nil, err('invalid_argument', 'capabilities:expected up to ' .. MAX_CAPABILITIES .. ' names separated by commas')
    end
    set[part] = true
  end
  return set
end

-- The capabilities part of an `adm` value ('' = none).
needed_capabilities = function(adm)
  return string.match(adm, '^[^;]*;[^;]*;([^;]*)$') or ''
end

-- Does the capability set `have` hold every name of `needs` ('a,b')?
capable = function(needs, have)
  for part in string.gmatch(needs, '([^,]+)') do
    if not have[part] then return false end
  end
  return true
end

---------------------------------------------------------------------------
-- Budgets. Hash fields: every_ms, next_reset, breached (0|1), soft (0|1),
-- breached_at, hard.<dim>, soft.<dim>, use.<dim>.

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
  local resets = 'ff:idx:' .. tag .. ':resets'
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
  redis.call('SADD', 'ff:idx:' .. tag .. ':budgets', name)
  local resets = 'ff:idx:' .. tag .. ':resets'
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

-- Zero a budget's usage and clear its markers.
local function reset_budget(bk)
  local was = redis.call('HGET', bk, 'breached')
  local names = redis.call('HKEYS', bk)
  for _, k in ipairs(names) do
    if string.find(k, '^use%.') then redis.call('HDEL', bk, k) end
  end
  redis.call('HSET', bk, 'breached', '0', 'soft', '0')
  if was == '1' then announce_admission() end
end

-- ff_budget_reset: reset now (usage to zero).  KEYS: budget  ARGV: name -> {1, 'reset'}
local function ff_budget_reset(keys, args)
  local bk, _, _, e = named_target(keys, args, 'budget', 'b')
  if e then return e end
  if redis.call('EXISTS', bk) == 0 then return err('not_found', args[1]) end
  reset_budget(bk)
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
  if tag == nil or idx ~= 'ff:idx:' .. tag .. ':resets' then
    return err('invalid_argument', 'index:KEYS[1] must be the resets index of a budget partition')
  end
  local limit, e = int_arg(args[1], 'limit', 1, MAX_SCAN_COUNT)
  if e then return e end
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  local done = 0
  for i = 1, #due, 2 do
    local name, at = due[i], tonumber(due[i + 1])
    local bk = 'ff:budget:' .. tag .. ':' .. name
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
  if tag == nil or idx ~= 'ff:idx:' .. tag .. ':' .. name then
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
  local resets = 'ff:idx:' .. tag .. ':resets'
  for _, name in ipairs(step[2]) do
    checked = checked + 1
    local bk = 'ff:budget:' .. tag .. ':' .. name
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

---------------------------------------------------------------------------
-- Quotas. Hash fields: window_ms, max (0 = no rate limit), conc (0 = no cap).
-- :win  admissions in the window, '<eid>:<epoch>' scored by admission time;
-- :holders  execution id -> the lease epoch it holds a concurrency slot under.

-- ff_quota_define  KEYS: quota  ARGV: name, window_ms, max, conc -> {1, 'created'|'updated'}
local function ff_quota_define(keys, args)
  local qk, tag, name, e = named_target(keys, args, 'quota', 'q')
  if e then return e end
  local window, max, conc
  window, e = int_arg(args[2], 'window_ms', 1, MAX_DURATION_MS); if e then return e end
  max, e = int_arg(args[3], 'max_per_window', 0, 1000000000); if e then return e end
  conc, e = int_arg(args[4], 'concurrency', 0, 1000000000); if e then return e end
  local existed = redis.call('EXISTS', qk) == 1
  redis.call('HSET', qk, 'name', name, 'window_ms', window, 'max', max, 'conc', conc)
  redis.call('SADD', 'ff:idx:' .. tag .. ':quotas', name)
  -- (its limits may have grown)
  announce_admission()
  return ok(existed and 'updated' or 'created')
end

-- Drop admissions that left the window (it is (now - window, now]).
local function trim_window(qk, window, now)
  redis.call('ZREMRANGEBYSCORE', qk .. ':win', '-inf', now - window)
end

-- ff_admit: admit one claimed execution (holder = eid at its lease epoch).
-- KEYS: quota  ARGV: name, eid, epoch
-- -> {1, 'admitted'|'held'|'unlimited', 0} | {1, 'rate', retry_at} | {1, 'concurrency', 0}
-- 'held': this holder was admitted before (a retried call); 'unlimited': no such quota.
local function ff_admit(keys, args)
  local qk, _, _, e = named_target(keys, args, 'quota', 'q')
  if e then return e end
  local eid = args[2]
  local etag = string.match(eid or '', '^({fp:%d+}):')
  if etag == nil or not eid_ok(eid, etag) then return err('invalid_argument', 'execution:expected an execution id') end
  local epoch
  epoch, e = int_arg(args[3], 'epoch', 1, 9007199254740991); if e then return e end
  local q = hmget(qk, 'window_ms', 'max', 'conc')
  local window, max, conc = counter(q.window_ms), counter(q.max), counter(q.conc)
  if q.window_ms == nil then return ok('unlimited', 0) end
  if window == nil or max == nil or conc == nil then return err('invalid_state', 'quota record is malformed') end
  local holders = qk .. ':holders'
  local held = redis.call('HGET', holders, eid)
  if held == tostring(epoch) then return ok('held', 0) end
  local now = now_ms()
  trim_window(qk, window, now)
  if max > 0 then
    local n = redis.call('ZCARD', qk .. ':win')
    if n >= max then
      local oldest = redis.call('ZRANGE', qk .. ':win', n - max, n - max, 'WITHSCORES')
      redis.call('HSET', qk, 'watched', '1')
      return ok('rate', tonumber(oldest[2]) + window)
    end
  end
  if conc > 0 then
    -- A stale slot of this execution (an older epoch) is this claim's own.
    local n = redis.call('HLEN', holders) - (held and 1 or 0)
    if n >= conc then
      redis.call('HSET', qk, 'watched', '1')
      return ok('concurrency', 0)
    end
    redis.call('HSET', holders, eid, epoch)
  end
  if max > 0 then redis.call('ZADD', qk .. ':win', now, eid .. ':' .. epoch) end
  return ok('admitted', 0)
end

-- ff_quota_release: give back the slot held by eid at epoch (a newer
-- holder of the same execution is left alone); with undo, the admission
-- also leaves the window (admission refused elsewhere: it never ran).
-- KEYS: quota  ARGV: name, eid, epoch, undo (0|1) -> {1, released (0|1)}
local function ff_quota_release(keys, args)
  local qk, _, _, e = named_target(keys, args, 'quota', 'q')
  if e then return e end
  local eid = args[2]
  local etag = string.match(eid or '', '^({fp:%d+}):')
  if etag == nil or not eid_ok(eid, etag) then return err('invalid_argument', 'execution:expected an execution id') end
  local epoch
  epoch, e = int_arg(args[3], 'epoch', 1, 9007199254740991); if e then return e end
  if args[4] ~= '0' and args[4] ~= '1' then return err('invalid_argument', 'undo:expected 0 or 1') end
  local released, freed = 0, 0
  if redis.call('HGET', qk .. ':holders', eid) == tostring(epoch) then
    redis.call('HDEL', qk .. ':holders', eid)
    released = 1
  end
  if args[4] == '1' then freed = redis.call('ZREM', qk .. ':win', eid .. ':' .. epoch) end
  -- Announced only when someone may wait for the place (see ff_quota_watch):
  -- a release per finished job is no message when nobody waits.
  if released + freed > 0 and redis.call('HGET', qk, 'watched') == '1' then
    redis.call('HDEL', qk, 'watched')
    announce_admission()
  end
  return ok(released)
end

-- ff_quota_watch (unblock scanner): executions are left blocked waiting for
-- a place: the next release announces itself (so does one after a refusal
-- by ff_admit). Answers whether there is a place now (one freed between the
-- scanner's read and this call: it looks again at once).
-- KEYS: quota  ARGV: name -> {1, room (0|1)}
local function ff_quota_watch(keys, args)
  local qk, _, _, e = named_target(keys, args, 'quota', 'q')
  if e then return e end
  local q = hmget(qk, 'window_ms', 'max', 'conc')
  if q.window_ms == nil then return ok(1) end
  local window, max, conc = counter(q.window_ms), counter(q.max), counter(q.conc)
  if window == nil or max == nil or conc == nil then return err('invalid_state', 'quota record is malformed') end
  local room = 1
  if max > 0 and redis.call('ZCOUNT', qk .. ':win', '(' .. (now_ms() - window), '+inf') >= max then room = 0 end
  if conc > 0 and redis.call('HLEN', qk .. ':holders') >= conc then room = 0 end
  redis.call('HSET', qk, 'watched', '1')
  return ok(room)
end

-- ff_quota_get  KEYS: quota  ARGV: name -> {1, now, window_ms, max, conc, holders, (admitted_at)*}
local function ff_quota_get(keys, args)
  local qk, _, _, e = named_target(keys, args, 'quota', 'q')
  if e then return e end
  local q = hmget(qk, 'window_ms', 'max', 'conc')
  if q.window_ms == nil then return err('not_found', args[1]) end
  local now = now_ms()
  local out = {1, now, tonumber(q.window_ms) or 0, tonumber(q.max) or 0, tonumber(q.conc) or 0,
    redis.call('HLEN', qk .. ':holders')}
  local win = redis.call('ZRANGEBYSCORE', qk .. ':win', '(' .. (now - (tonumber(q.window_ms) or 0)), '+inf', 'WITHSCORES')
  for i = 2, #win, 2 do out[#out + 1] = tonumber(win[i]) end
  return out
end

-- ff_quota_reconcile (quota reconciler): one SSCAN step over a quota
-- partition's quotas: windows trimmed, names of deleted quotas dropped, and
-- every slot holder listed so the engine can check it is still live (its
-- execution is on another slot) and give back the slots of dead ones.
-- KEYS: the partition's quotas index  ARGV: cursor, count
-- -> {1, next_cursor, trimmed, (quota, eid, epoch)*}
local function ff_quota_reconcile(keys, args)
  local tag, now, step, bad = reconcile_step(keys, args, 'q', 'quotas', 'quota')
  if bad then return bad end
  local idx = keys[1]
  local out = {1, step[1], 0}
  local trimmed = 0
  for _, name in ipairs(step[2]) do
    local qk = 'ff:quota:' .. tag .. ':' .. name
    local window = name_ok(name) and counter(redis.call('HGET', qk, 'window_ms'))
    if not window or redis.call('EXISTS', qk) == 0 then
      redis.call('SREM', idx, name)
    else
      trimmed = trimmed + redis.call('ZREMRANGEBYSCORE', qk .. ':win', '-inf', now - window)
      local hs = redis.call('HGETALL', qk .. ':holders')
      for i = 1, #hs, 2 do
        out[#out + 1] = name; out[#out + 1] = hs[i]; out[#out + 1] = hs[i + 1]
      end
    end
  end
  out[3] = trimmed
  return out
end

---------------------------------------------------------------------------
-- Execution side: blocked executions are runnable with elig
-- 'blocked_budget' | 'blocked_quota', in the partition's index of that name
-- scored by when they were blocked (the unblock scanner reads oldest first).

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
      local h = hmget(ek, 'phase', 'elig', 'lane', 'pri')
      redis.call('ZREM', idx, eid)
      if h.phase == 'runnable' and h.elig == elig and name_ok(h.lane) then
        redis.call('HDEL', ek, 'blocked_on')
        make_eligible(ek, tag, eid, h.lane, tonumber(h.pri) or 0, now)
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
  local h = hmget(ek, 'phase', 'elig', 'lane')
  if h.phase == nil then return err('not_found', args[1]) end
  if h.phase ~= 'runnable' or h.elig ~= 'eligible' or not name_ok(h.lane) then return ok('skipped') end
  redis.call('ZREM', eligible_key(tag, h.lane), args[1])
  local now = now_ms()
  redis.call('HSET', ek, 'elig', 'blocked_route')
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
register('ff_budget_define', ff_budget_define)
register('ff_report_usage', ff_report_usage)
register('ff_budget_reset', ff_budget_reset)
register_ro('ff_budget_get', ff_budget_get)
register('ff_budget_resets', ff_budget_resets)
register('ff_budget_reconcile', ff_budget_reconcile)
register('ff_quota_define', ff_quota_define)
register('ff_admit', ff_admit)
register('ff_quota_release', ff_quota_release)
register_ro('ff_quota_get', ff_quota_get)
register('ff_quota_watch', ff_quota_watch)
register('ff_quota_reconcile', ff_quota_reconcile)
register('ff_block', ff_block)
register('ff_unblock', ff_unblock)
register('ff_breach_cancel', ff_breach_cancel)
