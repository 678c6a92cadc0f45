-- The lease holder's calls (renew, complete, fail, end_many, delay, release)
-- and the operator's cancel and get.

local MAX_CLAIM_BATCH, MAX_DURATION_MS = F.MAX_CLAIM_BATCH, F.MAX_DURATION_MS
local MAX_LEASE_MS, MAX_PAYLOAD_BYTES = F.MAX_LEASE_MS, F.MAX_PAYLOAD_BYTES
local MAX_REASON_BYTES, MIN_LEASE_MS = F.MAX_REASON_BYTES, F.MIN_LEASE_MS
local err, hash_reply, hex32_ok, int_arg = P.err, P.hash_reply, P.hex32_ok, P.int_arg
local int_text, now_ms, ok, optional_fields = P.int_text, P.now_ms, P.ok, P.optional_fields
local register, register_ro, WRITE_HOOKS = P.register, P.register_ro, P.WRITE_HOOKS
local claim_apply, claim_check = CLAIM.claim_apply, CLAIM.claim_check
local eid_in_partition, eid_ok, exec_key = K.eid_in_partition, K.eid_ok, K.exec_key
local apply_moves, ms_text, new_moves, zadd_due = MV.apply_moves, MV.ms_text, MV.new_moves, MV.zadd_due
local NOT_PARTITION_EID, retry_delay_ms = EXEC.NOT_PARTITION_EID, EXEC.retry_delay_ms
local exec_target, index_target = EXEC.exec_target, EXEC.index_target
local leave_live, make_delayed = EXEC.leave_live, EXEC.make_delayed
local make_eligible, make_terminal = EXEC.make_eligible, EXEC.make_terminal
local count_series, SERIES = EXEC.count_series, F.SERIES
local ABSENT = F.ABSENT
local read_state, watched = EXEC.read_state, EXEC.watched

-- Fenced calls: ARGV starts with eid, lease_id, epoch.
--
-- lease_check fills `h` with the execution's fields when the caller holds
-- the current lease of an active execution; else it answers with a replay
-- reply, when this exact call (same lease, same operation) was accepted
-- before, or a refusal. `epoch` is the epoch argument as sent: a lease id
-- and epoch equal to the record's current ones are well formed (a claim
-- wrote them so), so only an argument that differs is checked, here, and
-- refused as invalid when it is not a lease id or an epoch.
local function lease_check(ek, tag, eid, lease_id, epoch, op, h)
  -- Only what an active execution's way out needs (an active record's elig
  -- is empty; lane and priority are read by the calls that re-index it),
  -- positional: this runs for every report. An absent field costs a search
  -- of the whole record, so the optional fields are read only when the
  -- record has some (`opt`), and end_fail reads the retry policy itself.
  local v = redis.call('HMGET', ek, 'phase', 'lease_id', 'epoch', 'att_timeout', 'retention', 'opt', 'lane')
  if v[1] ~= 'active' or v[2] ~= lease_id or v[3] ~= epoch then
    if not eid_ok(eid, tag) then
      return nil, err('invalid_argument', NOT_PARTITION_EID)
    end
    if not hex32_ok(lease_id) then return nil, err('invalid_argument', 'lease_id:expected 32 hex digits') end
    local n, e = int_arg(epoch, 'epoch', 1, 9007199254740991)
    if e then return nil, e end
    epoch = int_text(epoch, n)
    if not v[1] then return nil, err('not_found', eid) end
    -- (the epoch may have been sent in another form: '07')
    if v[1] ~= 'active' or v[2] ~= lease_id or v[3] ~= epoch then
      -- Not the current lease. A repeat of an accepted lease-ending call is
      -- answered from the fence: '<lease id>:<epoch>|<operation>|<outcome>:<due>'
      -- of the last one (an accepted call always leaves active, so the
      -- current lease never matches the fence and need not read it).
      -- A completion leaves no fence: outcome success under this lease says
      -- it (only the lease's complete ends in success, and nothing changes a
      -- terminal record's lease fields).
      local token = lease_id .. ':' .. epoch
      local f = redis.call('HMGET', ek, 'fence', 'outcome')
      local f_token, f_op, f_outcome, f_due = string.match(f[1] or '', '^([^|]+)|([%a_]+)|([%a_]+):(%d+)$')
      local ours = v[2] == lease_id and v[3] == epoch
      if ours and v[1] == 'terminal' and f[2] == 'success' then
        f_token, f_op, f_outcome, f_due = token, 'complete', 'completed', '0'
      end
      if f_token == token then
        if f_op == op then
          return nil, ok(f_outcome, tonumber(f_due), 1)
        end
        return nil, err('not_active', 'this lease already ended with ' .. f_op)
      end
      -- A lease is current only while its execution is active under it (an
      -- ended lease's fields stay, leave_live): one that was taken back is stale.
      if not ours or v[1] ~= 'terminal' then
        return nil, err('stale_lease', 'current epoch ' .. (v[3] or '0'))
      end
      return nil, err('not_active', v[1])
    end
  end
  local o = optional_fields(ek, v[6], 'deadline', 'flow')
  -- (Assigned in place: a batch passes one table for all its reports. An
  -- active execution has an attempt due exactly when it has an attempt
  -- timeout: the timeout stands for att_due, which leave_live only tests.)
  h.phase, h.elig, h.att_due, h.retention = 'active', nil, v[4] ~= '0' and v[4] or nil, v[5] or ABSENT.retention
  h.deadline, h.flow, h.watch = o[1] or nil, o[2] or nil, v[6] ~= '' and watched(v[6]) or nil
  h.ek, h.tag, h.eid, h.lease_id, h.epoch, h.lane = ek, tag, eid, lease_id, epoch, v[7] or nil
  return h
end

local function fenced(keys, args, op)
  local ek, tag, e = exec_target(keys, args[1])
  if e then return nil, e end
  return lease_check(ek, tag, args[1], args[2] or '', args[3] or '', op, {})
end

-- The `fence` value that records an accepted lease-ending call, so that its
-- repeat is answered the same.
local function seal(h, op, outcome, due)
  return h.lease_id .. ':' .. h.epoch .. '|' .. op .. '|' .. outcome .. ':' .. due
end

-- ff_renew  KEYS: exec  ARGV: eid, lease_id, epoch, ttl_ms -> {1, lease_exp}
local function ff_renew(keys, args)
  local ttl, e = int_arg(args[4], 'lease_ttl_ms', MIN_LEASE_MS, MAX_LEASE_MS)
  if e then return e end
  local h
  h, e = fenced(keys, args, 'renew')
  if e then return e end
  local exp = now_ms() + ttl
  redis.call('HSET', h.ek, 'lease_exp', ms_text(exp))
  zadd_due(h.tag, 'lease_expiry', exp, h.eid)
  return ok(exp)
end

-- The two ways an attempt ends with a report, once its lease check passed;
-- with `mv` (a batch of reports) index moves are deferred.
-- (A completion writes neither an attempt state nor a fence: outcome success
-- implies both; the decoder and lease_check read them so. An empty result,
-- the common one, is not written either: absent reads as empty.)
local function end_complete(h, result, now, mv)
  if result == '' then
    make_terminal(mv, h.ek, h.tag, h.eid, h, 'success', now)
  else
    make_terminal(mv, h.ek, h.tag, h.eid, h, 'success', now, 'result', result)
  end
end

local function end_fail(h, message, retryable, now, mv)
  if #message > MAX_REASON_BYTES then message = string.sub(message, 1, MAX_REASON_BYTES) end
  local r = redis.call('HMGET', h.ek, 'retry', 'retries')
  local policy, retries = r[1] or ABSENT.retry, tonumber(r[2] or '0')
  local max_retries = tonumber(string.match(policy, '^(%d+)')) or 0
  if retryable and retries < max_retries then
    local due = now + retry_delay_ms(h.eid, policy, retries + 1)
    leave_live(h.ek, h.tag, h.eid, h, mv)
    count_series(h.tag, h.lane, SERIES.retried, now)
    make_delayed(mv, h.ek, h.tag, h.eid, h, now, due, 'error', message, 'att_state', 'failed', 'retries', retries + 1,
      'fence', seal(h, 'fail', 'retry_scheduled', due))
    return ok('retry_scheduled', due, 0)
  end
  make_terminal(mv, h.ek, h.tag, h.eid, h, 'failed', now,
    'error', message, 'att_state', 'failed', 'fence', seal(h, 'fail', 'failed', 0))
  return ok('failed', 0, 0)
end

-- ff_complete  KEYS: exec  ARGV: eid, lease_id, epoch, result -> {1, 'completed', 0, replayed}
local function ff_complete(keys, args)
  local result = args[4] or ''
  if #result > MAX_PAYLOAD_BYTES then
    return err('payload_too_large', #result .. ':' .. MAX_PAYLOAD_BYTES)
  end
  local h, e = fenced(keys, args, 'complete')
  if e then return e end
  end_complete(h, result, now_ms())
  return ok('completed', 0, 0)
end

-- ff_fail  KEYS: exec  ARGV: eid, lease_id, epoch, error, retryable(0|1)
-- -> {1, 'retry_scheduled', due, replayed} | {1, 'failed', 0, replayed}
local function ff_fail(keys, args)
  if args[5] ~= '0' and args[5] ~= '1' then return err('invalid_argument', 'retryable:expected 0 or 1') end
  local h, e = fenced(keys, args, 'fail')
  if e then return e end
  return end_fail(h, args[4] or '', args[5] == '1', now_ms())
end

-- ff_end_many: complete or fail many attempts of one partition in one call
-- (a worker's reports, batched: the per-call costs and the index moves are
-- paid once per batch), then, when asked, claim more of the partition in the
-- same call (the worker's freed slots refilled without a round trip of their
-- own; a member made eligible by a report, the next level of a DAG, can be
-- among them). Each report is checked and answered on its own, as its single
-- call would be (a lease id or epoch that is not one is refused on its own,
-- by lease_check); a malformed batch (count, operation, an id of another
-- partition, flag, size, a malformed claim) refuses the whole call.
-- KEYS: the partition's lease_expiry index [, the claimed lane's eligible index]
-- ARGV: n, (op ('complete'|'fail'), eid, lease_id, epoch, result or error, retryable (0|1)) * n
--       [, ff_claim's ARGV]
-- -> {1, n, reply * n [, claim reply]}, each reply that of ff_complete or
--    ff_fail, but the common one, completed and not a replay, is the integer
--    1 (short to send); the claim reply is ff_claim's, lane_paused included
local END_OPS = {complete = true, fail = true}

local function ff_end_many(keys, args)
  local _, tag, e = index_target(keys, 'lease_expiry')
  if e then return e end
  local n
  n, e = int_arg(args[1], 'count', 1, MAX_CLAIM_BATCH)
  if e then return e end
  local claim
  if keys[2] then
    claim, e = claim_check(keys[2], args, 2 + 6 * n)
    if e then return e end
    if claim.tag ~= tag then return err('invalid_argument', 'lane:KEYS[2] must be of the partition of KEYS[1]') end
  elseif #args ~= 1 + 6 * n then
    return err('invalid_argument', 'count:expected ' .. n .. ' reports of 6 arguments')
  end
  -- (the id's partition only: its key must be in this slot; the rest of it
  -- is checked with the lease, by lease_check)
  for i = 1, n do
    local b = 6 * i - 4
    local op, eid, data, flag = args[b], args[b + 1], args[b + 4], args[b + 5]
    if not END_OPS[op] then return err('invalid_argument', 'op:expected complete or fail') end
    if not eid_in_partition(eid, tag) then return err('invalid_argument', NOT_PARTITION_EID) end
    if flag ~= '0' and flag ~= '1' then return err('invalid_argument', 'retryable:expected 0 or 1') end
    if op == 'complete' and #data > MAX_PAYLOAD_BYTES then
      return err('payload_too_large', #data .. ':' .. MAX_PAYLOAD_BYTES)
    end
  end
  local now = now_ms()
  local mv = new_moves(now)
  local out = {1, n}
  local scratch = {}
  for i = 1, n do
    local b = 6 * i - 4
    local op, eid = args[b], args[b + 1]
    local h, refusal = lease_check(exec_key(eid), tag, eid, args[b + 2], args[b + 3], op, scratch)
    if refusal then
      out[i + 2] = refusal
    elseif op == 'complete' then
      end_complete(h, args[b + 4], now, mv)
      out[i + 2] = 1
    else
      out[i + 2] = end_fail(h, args[b + 4], args[b + 5] == '1', now, mv)
    end
  end
  apply_moves(mv)
  if claim then
    -- (the flow work the reports left is done first: a dependent they made
    -- eligible can be claimed now)
    WRITE_HOOKS.after()
    out[n + 3] = claim_apply(claim, now)
  end
  return out
end

-- ff_delay: the worker gives the execution back, due again after delay_ms
-- (not a failure: no retry is used).
-- KEYS: exec  ARGV: eid, lease_id, epoch, delay_ms -> {1, 'delayed', due, replayed}
local function ff_delay(keys, args)
  local delay, e = int_arg(args[4], 'delay_ms', 0, MAX_DURATION_MS)
  if e then return e end
  local h
  h, e = fenced(keys, args, 'delay')
  if e then return e end
  local now = now_ms()
  local due = now + delay
  leave_live(h.ek, h.tag, h.eid, h)
  make_delayed(nil, h.ek, h.tag, h.eid, h, now, due, 'att_state', 'delayed', 'fence', seal(h, 'delay', 'delayed', due))
  return ok('delayed', due, 0)
end

-- ff_release: the worker hands the execution back unfinished (e.g. it is
-- shutting down): eligible again at once, no retry or reclaim used.
-- KEYS: exec  ARGV: eid, lease_id, epoch -> {1, 'released', 0, replayed}
local function ff_release(keys, args)
  local h, e = fenced(keys, args, 'release')
  if e then return e end
  leave_live(h.ek, h.tag, h.eid, h)
  redis.call('HSET', h.ek, 'att_state', 'released', 'fence', seal(h, 'release', 'released', 0))
  make_eligible(h.ek, h.tag, h.eid, h, tonumber(redis.call('HGET', h.ek, 'pri')) or 0, now_ms())
  return ok('released', 0, 0)
end

-- ff_cancel  KEYS: exec  ARGV: eid, reason -> {1, 'cancelled', 0, replayed}
local function ff_cancel(keys, args)
  local eid = args[1]
  local ek, tag, e = exec_target(keys, eid)
  if e then return e end
  local reason = args[2] or ''
  if #reason > MAX_REASON_BYTES then return err('invalid_argument', 'reason:too long') end
  local h = read_state(ek, 'outcome')
  if h.phase == nil then return err('not_found', eid) end
  if h.phase == 'terminal' then
    if h.outcome == 'cancelled' then return ok('cancelled', 0, 1) end
    return err('already_terminal', h.outcome)
  end
  if h.phase == 'active' then
    make_terminal(nil, ek, tag, eid, h, 'cancelled', now_ms(), 'error', reason, 'att_state', 'cancelled')
  else
    make_terminal(nil, ek, tag, eid, h, 'cancelled', now_ms(), 'error', reason)
  end
  return ok('cancelled', 0, 0)
end

-- ff_get  KEYS: exec  ARGV: eid -> {1, now, field, value, ...}
local function ff_get(keys, args)
  local ek, _, e = exec_target(keys, args[1])
  if e then return e end
  return hash_reply(ek, now_ms()) or err('not_found', args[1])
end

register('ff_renew', ff_renew)
register('ff_complete', ff_complete)
register('ff_fail', ff_fail)
register('ff_end_many', ff_end_many)
register('ff_delay', ff_delay)
register('ff_release', ff_release)
register('ff_cancel', ff_cancel)
register_ro('ff_get', ff_get)

--- @export fenced, seal
