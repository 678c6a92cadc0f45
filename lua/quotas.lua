-- Quotas. Hash fields: window_ms, max (0 = no rate limit), conc (0 = no cap).
-- :win  admissions in the window, '<eid>:<epoch>' scored by admission time;
-- :holders  execution id -> the lease epoch it holds a concurrency slot under.

local MAX_DURATION_MS = F.MAX_DURATION_MS
local counter, err, hmget, int_arg = P.counter, P.err, P.hmget, P.int_arg
local name_ok, now_ms, ok, register = P.name_ok, P.now_ms, P.ok, P.register
local register_ro = P.register_ro
local admission_key, eid_ok, idx_key = K.admission_key, K.eid_ok, K.idx_key
local announce_admission, named_target = ADM.announce_admission, ADM.named_target
local reconcile_step = BUDGETS.reconcile_step

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
  redis.call('SADD', idx_key(tag, 'quotas'), name)
  -- (its limits may have grown)
  announce_admission()
  return ok(existed and 'updated' or 'created')
end

-- Drop admissions that left the window (it is (now - window, now]).
local function trim_window(qk, window, now)
  redis.call('ZREMRANGEBYSCORE', qk .. ':win', '-inf', now - window)
end

-- A quota and one of its holders, from KEYS {quota} and ARGV {name, eid, epoch}.
local function quota_holder(keys, args)
  local qk, _, _, e = named_target(keys, args, 'quota', 'q')
  if e then return nil, nil, nil, e end
  local eid = args[2]
  local etag = string.match(eid or '', '^({fp:%d+}):')
  if etag == nil or not eid_ok(eid, etag) then
    return nil, nil, nil, err('invalid_argument', 'execution:expected an execution id')
  end
  local epoch
  epoch, e = int_arg(args[3], 'epoch', 1, 9007199254740991)
  return qk, eid, epoch, e
end

-- ff_admit: admit one claimed execution (holder = eid at its lease epoch).
-- KEYS: quota  ARGV: name, eid, epoch
-- -> {1, 'admitted'|'held'|'unlimited', 0} | {1, 'rate', retry_at} | {1, 'concurrency', 0}
-- 'held': this holder was admitted before (a retried call); 'unlimited': no such quota.
local function ff_admit(keys, args)
  local qk, eid, epoch, e = quota_holder(keys, args)
  if e then return e end
  local q = hmget(qk, 'window_ms', 'max', 'conc')
  local window, max, conc = counter(q.window_ms), counter(q.max), counter(q.conc)
  if q.window_ms == nil then return ok('unlimited', 0) end
  if window == nil or max == nil or conc == nil then return err('invalid_state', 'quota record is malformed') end
  local holders = qk .. ':holders'
  local held = redis.call('HGET', holders, eid)
  if held == tostring(epoch) then return ok('held', 0) end
  local now = now_ms()
  trim_window(qk, window, now)
  -- Without a concurrency cap no slot records the holder: its admission in
  -- the window does (else a repeat would find the window full of itself).
  if conc == 0 and max > 0 and redis.call('ZSCORE', qk .. ':win', eid .. ':' .. epoch) then
    return ok('held', 0)
  end
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
  local qk, eid, epoch, e = quota_holder(keys, args)
  if e then return e end
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
    local qk = admission_key('quota', tag, name)
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

register('ff_quota_define', ff_quota_define)
register('ff_admit', ff_admit)
register('ff_quota_release', ff_quota_release)
register_ro('ff_quota_get', ff_quota_get)
register('ff_quota_watch', ff_quota_watch)
register('ff_quota_reconcile', ff_quota_reconcile)
