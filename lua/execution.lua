-- The execution lifecycle: create, claim, renew, complete, fail, delay, cancel, get.
--
-- One hash per execution (ff:exec:{fp:N}:<hex>) holds its state dimensions
-- (phase, elig, outcome), policy, payload, result, lease and current attempt.
-- Index membership follows state exactly (indexes.lua is the one place that
-- moves an execution between index sets).

-- The channel the engine listens on to wake a scanner early.
local WAKE_CHANNEL = 'ff:wake'

-- Add to a due-time index; when the member becomes the index's earliest, tell
-- the engine (message '<index> <tag> <due>') so its scanner wakes in time
-- instead of at its next planned look.
local function zadd_due(tag, name, due, eid)
  local key = idx_key(tag, name)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  redis.call('ZADD', key, due, eid)
  if head[2] == nil or due < tonumber(head[2]) then
    redis.call('PUBLISH', WAKE_CHANNEL, name .. ' ' .. tag .. ' ' .. due)
  end
end

-- zadd_due for many members at once: `entries` is {due, member, due, member, ...}.
local function zadd_due_many(tag, name, entries)
  if #entries == 0 then return end
  local key = idx_key(tag, name)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local earliest = entries[1]
  for i = 3, #entries, 2 do
    if entries[i] < earliest then earliest = entries[i] end
  end
  redis.call('ZADD', key, unpack(entries))
  if head[2] == nil or earliest < tonumber(head[2]) then
    redis.call('PUBLISH', WAKE_CHANNEL, name .. ' ' .. tag .. ' ' .. earliest)
  end
end

-- Eligible-index score: higher priority first, then first in, first out.
local PRIORITY_SCALE = 4398046511104 -- 2^42 ms, about 139 years

local function eligible_score(priority, enqueued_ms)
  return (MAX_PRIORITY - priority) * PRIORITY_SCALE + enqueued_ms
end

-- The fields that say which indexes an execution is in; every transition
-- reads them first (hmget(ek, unpack(STATE_FIELDS), ...)).
local STATE_FIELDS = {'phase', 'elig', 'lane', 'pri', 'att_due', 'deadline', 'retention', 'flow'}

local function read_state(ek, ...)
  local names = {unpack(STATE_FIELDS)}
  for _, f in ipairs({...}) do names[#names + 1] = f end
  return hmget(ek, unpack(names))
end

-- Leave the index a live (non-terminal) state puts the execution in; the
-- deadline index is left only on the way to terminal.
local function leave_live(ek, tag, eid, h)
  if h.phase == 'runnable' and h.elig == 'eligible' then
    redis.call('ZREM', eligible_key(tag, h.lane), eid)
  elseif h.phase == 'runnable' and h.elig == 'delayed' then
    redis.call('ZREM', idx_key(tag, 'delayed'), eid)
  elseif h.phase == 'runnable' and h.elig == 'waiting_children' then
    redis.call('ZREM', idx_key(tag, 'waiting_children'), eid)
  elseif h.phase == 'runnable' and (h.elig == 'blocked_budget' or h.elig == 'blocked_quota' or h.elig == 'blocked_route') then
    redis.call('ZREM', idx_key(tag, h.elig), eid)
  elseif h.phase == 'active' then
    redis.call('ZREM', idx_key(tag, 'lease_expiry'), eid)
    if h.att_due then redis.call('ZREM', idx_key(tag, 'attempt_timeout'), eid) end
    -- The epoch and the fence stay: later stale calls are checked against them.
    redis.call('HDEL', ek, 'lease_id', 'lease_exp', 'worker', 'wi', 'att_due')
  elseif h.phase == 'suspended' then
    end_suspension(ek, tag, eid)
  end
end

-- The channel workers follow to learn that a lane of a partition has work.
local READY_CHANNEL = 'ff:ready'

-- runnable/eligible: into the lane's eligible index. Announced to workers only
-- when the index was empty: otherwise they already know the partition has work.
local function make_eligible(ek, tag, eid, lane, priority, now)
  local key = eligible_key(tag, lane)
  if redis.call('ZCARD', key) == 0 then
    redis.call('PUBLISH', READY_CHANNEL, lane .. ' ' .. tag)
  end
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'eligible', 'due', '')
  redis.call('ZADD', key, eligible_score(priority, now), eid)
end

-- runnable/delayed until `due`; `...` are extra field/value pairs to store.
local function make_delayed(ek, tag, eid, due, ...)
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'delayed', 'due', due, ...)
  zadd_due(tag, 'delayed', due, eid)
end

-- runnable/waiting_children: until its parents decide its join (flows.lua).
-- The index score is when the dependency reconciler next re-checks it.
local function make_waiting(ek, tag, eid, now)
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'waiting_children', 'due', '')
  redis.call('ZADD', idx_key(tag, 'waiting_children'), now + WAITING_RECHECK_MS, eid)
end

-- Set by flows.lua: a flow member reached a terminal state; ff_create's
-- flow arguments checked; a new member placed by its dependencies; a
-- member's keys purged.
local flow_member_ended, flow_member_arg, flow_member_created, flow_member_purged, flow_purge_blocked
-- Set by admission.lua: ff_create's budgets, quotas and capabilities checked
-- and encoded; ff_claim's capabilities read; capability matching.
local admission_arg, capabilities_arg, needed_capabilities, capable
-- Executions needing capabilities a claimer lacks that one claim looks past.
local ROUTE_LOOKAHEAD = 64
-- How far past skipped executions a claim may start (core MAX_CLAIM_SKIP).
local MAX_CLAIM_SKIP = 65536

-- Into a terminal state (from any live state `h`): out of the live indexes,
-- into the retention index; `...` are extra field/value pairs to store.
local function make_terminal(ek, tag, eid, h, outcome, now, ...)
  leave_live(ek, tag, eid, h)
  if h.deadline then redis.call('ZREM', idx_key(tag, 'deadline'), eid) end
  redis.call('HSET', ek, 'phase', 'terminal', 'elig', '', 'outcome', outcome, 'ended', now, 'due', '', ...)
  zadd_due(tag, 'terminal', now + (num(h.retention) or 0), eid)
  if h.flow then flow_member_ended(tag, eid, h.flow, outcome, now) end
end

-- Delay before retry number n (1-based), from the stored policy (core/src/retry.rs).
local function backoff_ms(policy, n)
  local kind, a, b = string.match(policy, '^%d+:(%a):(%d+):?(%d*)$')
  a = tonumber(a) or 0
  if kind == 'f' then return a end
  local cap = tonumber(b) or a
  local d = a
  for _ = 2, n do
    if d == 0 or d >= cap then break end
    d = d * 2
  end
  if d > cap then d = cap end
  return d
end

local function policy_ok(p)
  if type(p) ~= 'string' then return false end
  local max, d = string.match(p, '^(%d+):f:(%d+)$')
  if max then
    return tonumber(max) <= MAX_RETRIES and tonumber(d) <= MAX_BACKOFF_MS
  end
  local i, m
  max, i, m = string.match(p, '^(%d+):e:(%d+):(%d+)$')
  if max then
    i, m = tonumber(i), tonumber(m)
    return tonumber(max) <= MAX_RETRIES and i <= m and m <= MAX_BACKOFF_MS
  end
  return false
end

-- The state dimensions as returned to the client (it derives the public state).
local function state_of(ek)
  local s = hmget(ek, 'phase', 'elig', 'outcome')
  return s.phase or '', s.elig or '', s.outcome or ''
end

-- Validate the (eid, KEYS[1]) pair every per-execution function receives.
local function exec_target(keys, eid)
  local ek = keys[1]
  local tag = tag_of(ek or '')
  if tag == nil or not eid_ok(eid, tag) or ek ~= exec_key(eid) then
    return nil, nil, err('invalid_argument', 'execution:KEYS[1] must be ff:exec:<execution id> and match ARGV[1]')
  end
  return ek, tag
end

---------------------------------------------------------------------------
-- ff_create
-- KEYS: exec [, idempotency record]
-- ARGV: eid, ns, lane, kind, priority, payload, delay_ms, attempt_timeout_ms,
--       deadline_ms, retry, max_reclaims, retention_ms, idem_ttl_ms, flow ('' = none),
--       join, join_cancel (0|1), ntags, (tag, value)* [, budgets, quotas, capabilities]
--       (names separated by commas; admission.lua)
-- -> {1, 'created'|'duplicate', eid, phase, elig, outcome}
local function ff_create(keys, args)
  local eid = args[1]
  local ek, tag, e = exec_target(keys, eid)
  if e then return e end
  local ns, lane, kind
  ns, e = name_arg(args[2], 'namespace'); if e then return e end
  lane, e = name_arg(args[3], 'lane'); if e then return e end
  kind, e = name_arg(args[4], 'kind'); if e then return e end
  local pri, delay, att_timeout, deadline, max_reclaims, retention, idem_ttl, ntags
  pri, e = int_arg(args[5], 'priority', 0, MAX_PRIORITY); if e then return e end
  local payload = args[6] or ''
  if #payload > MAX_PAYLOAD_BYTES then
    return err('payload_too_large', #payload .. ':' .. MAX_PAYLOAD_BYTES)
  end
  delay, e = int_arg(args[7], 'delay_ms', 0, MAX_DURATION_MS); if e then return e end
  att_timeout, e = int_arg(args[8], 'attempt_timeout_ms', 0, MAX_DURATION_MS); if e then return e end
  deadline, e = int_arg(args[9], 'deadline_ms', 0, MAX_DURATION_MS); if e then return e end
  local retry = args[10]
  if not policy_ok(retry) then
    return err('invalid_argument', 'retry:expected <max>:f:<ms> or <max>:e:<initial>:<max> within bounds')
  end
  max_reclaims, e = int_arg(args[11], 'max_reclaims', 0, MAX_RECLAIMS); if e then return e end
  retention, e = int_arg(args[12], 'retention_ms', 0, MAX_DURATION_MS); if e then return e end
  idem_ttl, e = int_arg(args[13], 'idempotency_ttl_ms', 0, MAX_DURATION_MS); if e then return e end
  local member
  member, e = flow_member_arg(tag, args[14], args[15], args[16]); if e then return e end
  ntags, e = int_arg(args[17], 'tags', 0, MAX_TAGS); if e then return e end
  if #args ~= 17 + 2 * ntags and #args ~= 20 + 2 * ntags then
    return err('invalid_argument', 'tags:expected ' .. ntags .. ' name/value pairs')
  end
  local adm
  adm, e = admission_arg(args[18 + 2 * ntags], args[19 + 2 * ntags], args[20 + 2 * ntags]); if e then return e end
  local fields = {}
  for i = 0, ntags - 1 do
    local tn, tv = args[18 + 2 * i], args[19 + 2 * i]
    if not name_ok(tn) then return err('invalid_argument', 'tag:bad tag name') end
    if #tv > MAX_TAG_VALUE_BYTES then return err('invalid_argument', 'tag:value of ' .. tn .. ' too long') end
    fields[#fields + 1] = 'tag.' .. tn
    fields[#fields + 1] = tv
  end
  local idem_key = keys[2]
  if idem_ttl > 0 then
    if idem_key == nil or string.sub(idem_key, 1, 8 + #tag + 1) ~= 'ff:idem:' .. tag .. ':' then
      return err('invalid_argument', 'idempotency:KEYS[2] must be the idempotency record of this partition')
    end
    local existing = redis.call('GET', idem_key)
    if existing and redis.call('EXISTS', exec_key(existing)) == 1 then
      return ok('duplicate', existing, state_of(exec_key(existing)))
    end
  elseif idem_key ~= nil then
    return err('invalid_argument', 'idempotency:a record key needs a positive TTL')
  end
  if redis.call('EXISTS', ek) == 1 then
    return err('invalid_argument', 'execution:id already exists')
  end

  local now = now_ms()
  -- Counters (att, retries, reclaims, epoch) start absent: absent reads as 0.
  redis.call('HSET', ek,
    'id', eid, 'ns', ns, 'lane', lane, 'kind', kind, 'pri', pri, 'payload', payload,
    'created', now,
    'att_timeout', att_timeout, 'retry', retry, 'max_reclaims', max_reclaims,
    'retention', retention, unpack(fields))
  if adm then redis.call('HSET', ek, 'adm', adm) end
  if idem_ttl > 0 then
    redis.call('HSET', ek, 'idem', idem_key)
    redis.call('SET', idem_key, eid, 'PX', idem_ttl)
  end
  redis.call('SADD', idx_key(tag, 'all'), eid)
  if deadline > 0 then
    redis.call('HSET', ek, 'deadline', now + deadline)
    zadd_due(tag, 'deadline', now + deadline, eid)
  end
  if member then
    flow_member_created(ek, tag, eid, member, now, delay, lane, pri)
  elseif delay > 0 then
    make_delayed(ek, tag, eid, now + delay)
  else
    make_eligible(ek, tag, eid, lane, pri, now)
  end
  return ok('created', eid, state_of(ek))
end

---------------------------------------------------------------------------
-- ff_claim: hand out up to n eligible executions of one lane of one partition.
-- KEYS: eligible index of the lane
-- ARGV: lane, worker, worker_instance, lease_ttl_ms, n, lease_id * n [, capabilities [, skip]]
-- -> {1, count, (eid, lease_id, epoch, attempt, lease_exp, kind, payload) * count,
--     adm * count, nskipped, (eid, capabilities) * nskipped}
-- adm: what it draws on (admission.lua; '' = none). An execution needing a
-- capability the worker lacks is skipped (left eligible) and listed; up to
-- ROUTE_LOOKAHEAD of them are looked past. skip: start that far into the
-- index (past those an earlier call of the same claim skipped).
local function ff_claim(keys, args)
  local ek_idx = keys[1]
  local tag = tag_of(ek_idx or '')
  local lane, worker, wi, ttl, n, e
  lane, e = name_arg(args[1], 'lane'); if e then return e end
  if tag == nil or ek_idx ~= eligible_key(tag, lane) then
    return err('invalid_argument', 'lane:KEYS[1] must be the eligible index of the lane')
  end
  worker, e = name_arg(args[2], 'worker'); if e then return e end
  wi, e = name_arg(args[3], 'worker_instance'); if e then return e end
  ttl, e = int_arg(args[4], 'lease_ttl_ms', MIN_LEASE_MS, MAX_LEASE_MS); if e then return e end
  n, e = int_arg(args[5], 'count', 1, MAX_CLAIM_BATCH); if e then return e end
  if #args < 5 + n or #args > 7 + n then return err('invalid_argument', 'count:expected ' .. n .. ' lease ids') end
  local caps, skip
  caps, e = capabilities_arg(args[6 + n] or ''); if e then return e end
  skip, e = int_arg(args[7 + n] or '0', 'skip', 0, MAX_CLAIM_SKIP); if e then return e end
  for i = 1, n do
    if not hex32_ok(args[5 + i]) then return err('invalid_argument', 'lease_id:expected 32 hex digits') end
  end

  local now = now_ms()
  local out = {1, 0}
  local claimed = 0
  local exp = now + ttl
  -- Index moves are made once for the whole batch (the hot path of workers).
  local taken, leased, timed, adms, skipped = {}, {}, {}, {}, {}
  local cands = redis.call('ZRANGE', ek_idx, skip, skip + n - 1 + ROUTE_LOOKAHEAD)
  for _, eid in ipairs(cands) do
    if claimed >= n then break end
    local ek = exec_key(eid)
    local h = read_state(ek, 'att', 'epoch', 'att_timeout', 'kind', 'payload', 'adm')
    local att, epoch, att_timeout = counter(h.att), counter(h.epoch), counter(h.att_timeout)
    local needs = h.adm and needed_capabilities(h.adm)
    if needs and needs ~= '' and h.phase == 'runnable' and h.elig == 'eligible' and not capable(needs, caps) then
      if #skipped < 2 * ROUTE_LOOKAHEAD then
        skipped[#skipped + 1] = eid
        skipped[#skipped + 1] = needs
      end
    elseif not eid_ok(eid, tag) or h.phase ~= 'runnable' or h.elig ~= 'eligible' or h.lane ~= lane
        or att == nil or epoch == nil or att_timeout == nil
        or (h.deadline and num(h.deadline) == nil) or not name_ok(h.kind) then
      -- The index disagrees with the record, or the record is unusable: drop
      -- the entry (the reconciler re-indexes a sound record; a broken one
      -- waits for an operator rather than failing every claim).
      taken[#taken + 1] = eid
    elseif h.deadline and num(h.deadline) <= now then
      make_terminal(ek, tag, eid, h, 'expired', now, 'error', 'execution deadline passed')
    else
      claimed = claimed + 1
      local lease_id = args[5 + claimed]
      att, epoch = att + 1, epoch + 1
      taken[#taken + 1] = eid
      leased[#leased + 1] = exp
      leased[#leased + 1] = eid
      if att_timeout > 0 then
        redis.call('HSET', ek, 'phase', 'active', 'elig', '', 'lease_id', lease_id, 'epoch', epoch,
          'lease_exp', exp, 'worker', worker, 'wi', wi, 'att', att, 'att_state', 'running',
          'att_started', now, 'att_due', now + att_timeout)
        timed[#timed + 1] = now + att_timeout
        timed[#timed + 1] = eid
      else
        redis.call('HSET', ek, 'phase', 'active', 'elig', '', 'lease_id', lease_id, 'epoch', epoch,
          'lease_exp', exp, 'worker', worker, 'wi', wi, 'att', att, 'att_state', 'running',
          'att_started', now)
      end
      local k = #out
      out[k + 1] = eid; out[k + 2] = lease_id; out[k + 3] = epoch; out[k + 4] = att
      out[k + 5] = exp; out[k + 6] = h.kind or ''; out[k + 7] = h.payload or ''
      adms[#adms + 1] = h.adm or ''
    end
  end
  for _, a in ipairs(adms) do out[#out + 1] = a end
  out[#out + 1] = #skipped / 2
  for _, s in ipairs(skipped) do out[#out + 1] = s end
  if #taken > 0 then redis.call('ZREM', ek_idx, unpack(taken)) end
  zadd_due_many(tag, 'lease_expiry', leased)
  zadd_due_many(tag, 'attempt_timeout', timed)
  out[2] = claimed
  return out
end

---------------------------------------------------------------------------
-- Fenced calls: ARGV starts with eid, lease_id, epoch.
--
-- Returns the execution's fields when the caller holds the current lease of an
-- active execution; a replay reply when this exact call (same lease, same
-- operation) was accepted before; or a refusal.
local function fenced(keys, args, op)
  local eid, lease_id = args[1], args[2]
  local ek, tag, e = exec_target(keys, eid)
  if e then return nil, e end
  if not hex32_ok(lease_id) then return nil, err('invalid_argument', 'lease_id:expected 32 hex digits') end
  local epoch
  epoch, e = int_arg(args[3], 'epoch', 1, 9007199254740991); if e then return nil, e end
  local h = read_state(ek, 'lease_id', 'epoch', 'retry', 'retries', 'fence')
  if h.phase == nil then return nil, err('not_found', eid) end
  local token = lease_id .. ':' .. epoch
  -- fence = '<lease id>:<epoch>|<operation>|<outcome>:<due>' of the last
  -- accepted lease-ending call (one field: it is stored on every execution).
  local f_token, f_op, f_outcome, f_due = string.match(h.fence or '', '^([^|]+)|([%a_]+)|([%a_]+):(%d+)$')
  if f_token == token then
    if f_op == op then
      return nil, ok(f_outcome, tonumber(f_due), 1)
    end
    return nil, err('not_active', 'this lease already ended with ' .. f_op)
  end
  if h.lease_id ~= lease_id or tonumber(h.epoch) ~= epoch then
    return nil, err('stale_lease', 'current epoch ' .. (h.epoch or '0'))
  end
  if h.phase ~= 'active' then
    return nil, err('not_active', h.phase)
  end
  h.ek, h.tag, h.eid, h.token = ek, tag, eid, token
  return h
end

-- The fields that record an accepted lease-ending call, so that its repeat
-- is answered the same.
local function seal(h, op, outcome, due)
  return {'fence', h.token .. '|' .. op .. '|' .. outcome .. ':' .. due}
end

-- ff_renew  ARGV: eid, lease_id, epoch, ttl_ms -> {1, lease_exp}
local function ff_renew(keys, args)
  local ttl, e = int_arg(args[4], 'lease_ttl_ms', MIN_LEASE_MS, MAX_LEASE_MS)
  if e then return e end
  local h
  h, e = fenced(keys, args, 'renew')
  if e then return e end
  local exp = now_ms() + ttl
  redis.call('HSET', h.ek, 'lease_exp', exp)
  zadd_due(h.tag, 'lease_expiry', exp, h.eid)
  return ok(exp)
end

-- ff_complete  ARGV: eid, lease_id, epoch, result -> {1, 'completed', 0, replayed}
local function ff_complete(keys, args)
  local result = args[4] or ''
  if #result > MAX_PAYLOAD_BYTES then
    return err('payload_too_large', #result .. ':' .. MAX_PAYLOAD_BYTES)
  end
  local h, e = fenced(keys, args, 'complete')
  if e then return e end
  make_terminal(h.ek, h.tag, h.eid, h, 'success', now_ms(),
    'result', result, 'att_state', 'succeeded', unpack(seal(h, 'complete', 'completed', 0)))
  return ok('completed', 0, 0)
end

-- ff_fail  ARGV: eid, lease_id, epoch, error, retryable(0|1)
-- -> {1, 'retry_scheduled', due, replayed} | {1, 'failed', 0, replayed}
local function ff_fail(keys, args)
  local message = args[4] or ''
  if #message > MAX_REASON_BYTES then message = string.sub(message, 1, MAX_REASON_BYTES) end
  if args[5] ~= '0' and args[5] ~= '1' then return err('invalid_argument', 'retryable:expected 0 or 1') end
  local h, e = fenced(keys, args, 'fail')
  if e then return e end
  local now = now_ms()
  local retries = tonumber(h.retries or '0')
  local max_retries = tonumber(string.match(h.retry or '0', '^(%d+)')) or 0
  if args[5] == '1' and retries < max_retries then
    local due = now + backoff_ms(h.retry, retries + 1)
    leave_live(h.ek, h.tag, h.eid, h)
    make_delayed(h.ek, h.tag, h.eid, due, 'error', message, 'att_state', 'failed', 'retries', retries + 1,
      unpack(seal(h, 'fail', 'retry_scheduled', due)))
    return ok('retry_scheduled', due, 0)
  end
  make_terminal(h.ek, h.tag, h.eid, h, 'failed', now,
    'error', message, 'att_state', 'failed', unpack(seal(h, 'fail', 'failed', 0)))
  return ok('failed', 0, 0)
end

-- ff_delay: the worker gives the execution back, due again after delay_ms
-- (not a failure: no retry is used).
-- ARGV: eid, lease_id, epoch, delay_ms -> {1, 'delayed', due, replayed}
local function ff_delay(keys, args)
  local delay, e = int_arg(args[4], 'delay_ms', 0, MAX_DURATION_MS)
  if e then return e end
  local h
  h, e = fenced(keys, args, 'delay')
  if e then return e end
  local due = now_ms() + delay
  leave_live(h.ek, h.tag, h.eid, h)
  make_delayed(h.ek, h.tag, h.eid, due, 'att_state', 'delayed', unpack(seal(h, 'delay', 'delayed', due)))
  return ok('delayed', due, 0)
end

-- ff_release: the worker hands the execution back unfinished (e.g. it is
-- shutting down): eligible again at once, no retry or reclaim used.
-- ARGV: eid, lease_id, epoch -> {1, 'released', 0, replayed}
local function ff_release(keys, args)
  local h, e = fenced(keys, args, 'release')
  if e then return e end
  leave_live(h.ek, h.tag, h.eid, h)
  redis.call('HSET', h.ek, 'att_state', 'released', unpack(seal(h, 'release', 'released', 0)))
  make_eligible(h.ek, h.tag, h.eid, h.lane, tonumber(h.pri) or 0, now_ms())
  return ok('released', 0, 0)
end

-- ff_cancel  ARGV: eid, reason -> {1, 'cancelled', 0, replayed}
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
    make_terminal(ek, tag, eid, h, 'cancelled', now_ms(), 'error', reason, 'att_state', 'cancelled')
  else
    make_terminal(ek, tag, eid, h, 'cancelled', now_ms(), 'error', reason)
  end
  return ok('cancelled', 0, 0)
end

-- ff_get  ARGV: eid -> {1, now, field, value, ...}
local function ff_get(keys, args)
  local ek, _, e = exec_target(keys, args[1])
  if e then return e end
  return hash_reply(ek, now_ms()) or err('not_found', args[1])
end

register('ff_create', ff_create)
register('ff_claim', ff_claim)
register('ff_renew', ff_renew)
register('ff_complete', ff_complete)
register('ff_fail', ff_fail)
register('ff_delay', ff_delay)
register('ff_release', ff_release)
register('ff_cancel', ff_cancel)
register_ro('ff_get', ff_get)
