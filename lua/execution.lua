-- The execution lifecycle: create, claim, renew, complete, fail, delay, cancel, get.
--
-- One hash per execution (ff:exec:{fp:N}:<hex>) holds its state dimensions
-- (phase, elig, outcome), policy, payload, result, lease and current attempt.
-- Index membership follows state exactly (indexes.lua is the one place that
-- moves an execution between index sets).

-- Eligible-index score: higher priority first, then first in, first out.
local PRIORITY_SCALE = 4398046511104 -- 2^42 ms, about 139 years

local function eligible_score(priority, enqueued_ms)
  return (MAX_PRIORITY - priority) * PRIORITY_SCALE + enqueued_ms
end

-- eligible_score as text, formatted once per batch and priority (a batch has
-- one `now`; a number argument would be formatted for every member).
local function batch_eligible_score(mv, priority, now)
  local s = mv.scores[priority]
  if not s then
    s = ms_text(eligible_score(priority, now))
    mv.scores[priority] = s
  end
  return s
end

-- The fields that say which indexes an execution is in, read by every
-- transition first, with the transition's own `...` after them; absent
-- fields read as nil. (Positional, without helper tables: this runs once per
-- execution on every hot path.)
local function read_state(ek, ...)
  local v = redis.call('HMGET', ek, 'phase', 'elig', 'lane', 'pri', 'att_due', 'deadline', 'retention', 'flow', ...)
  local h = {phase = v[1] or nil, elig = v[2] or nil, lane = v[3] or nil, pri = v[4] or nil,
    att_due = v[5] or nil, deadline = v[6] or nil, retention = v[7] or nil, flow = v[8] or nil}
  for i = 1, select('#', ...) do
    if v[8 + i] then h[select(i, ...)] = v[8 + i] end
  end
  return h
end

-- Leave the index a live (non-terminal) state puts the execution in; the
-- deadline index is left only on the way to terminal. With `mv` (a batch),
-- the active state's index removals are deferred (moves.lua). An ended
-- lease's fields stay as a record of who ran the attempt (a lease is current
-- only while its execution is active: lease_check), and the next claim
-- overwrites them in place.
local function leave_live(ek, tag, eid, h, mv)
  if h.phase == 'runnable' and h.elig == 'eligible' then
    redis.call('ZREM', eligible_key(tag, h.lane), eid)
  elseif h.phase == 'runnable' and h.elig == 'delayed' then
    redis.call('ZREM', idx_key(tag, 'delayed'), eid)
  elseif h.phase == 'runnable' and h.elig == 'waiting_children' then
    redis.call('ZREM', idx_key(tag, 'waiting_children'), eid)
  elseif h.phase == 'runnable' and (h.elig == 'blocked_budget' or h.elig == 'blocked_quota' or h.elig == 'blocked_route') then
    redis.call('ZREM', idx_key(tag, h.elig), eid)
  elseif h.phase == 'active' then
    idx_rem(mv, tag, 'lease_expiry', eid)
    if h.att_due then idx_rem(mv, tag, 'attempt_timeout', eid) end
  elseif h.phase == 'suspended' then
    end_suspension(ek, tag, eid)
  end
end

-- Into the lane's eligible index, for a record that says runnable/eligible.
-- Announced to workers only when the index was empty: otherwise they already
-- know the partition has work. With `mv` (a batch), the move is deferred (and
-- so is the announcement).
local function index_eligible(tag, eid, lane, priority, now, mv)
  local key = eligible_key(tag, lane)
  if mv then return defer_zadd(mv, key, batch_eligible_score(mv, priority, now), eid) end
  local score = eligible_score(priority, now)
  if redis.call('ZCARD', key) == 0 then
    redis.call('PUBLISH', READY_CHANNEL, lane .. ' ' .. tag)
    zadd_new_index(key, {score, eid}, score)
  else
    redis.call('ZADD', key, score, eid)
  end
end

-- runnable/eligible (index_eligible).
local function make_eligible(ek, tag, eid, lane, priority, now, mv)
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'eligible', 'due', '')
  index_eligible(tag, eid, lane, priority, now, mv)
end

-- runnable/delayed until `due`; `...` are extra field/value pairs to store.
local function make_delayed(mv, ek, tag, eid, due, ...)
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'delayed', 'due', due, ...)
  idx_due(mv, tag, 'delayed', due, eid)
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
-- into the retention index; `...` are extra field/value pairs to store. With
-- `mv` (a batch), its index moves are deferred.
local function make_terminal(mv, ek, tag, eid, h, outcome, now, ...)
  leave_live(ek, tag, eid, h, mv)
  if h.deadline then idx_rem(mv, tag, 'deadline', eid) end
  if h.phase == 'active' then
    -- (an active record's elig and due are already empty: the claim left them so)
    redis.call('HSET', ek, 'phase', 'terminal', 'outcome', outcome, 'ended', mv and mv.now_s or now, ...)
  else
    redis.call('HSET', ek, 'phase', 'terminal', 'elig', '', 'outcome', outcome, 'ended', mv and mv.now_s or now, 'due', '', ...)
  end
  idx_due(mv, tag, 'terminal', mv and batch_after(mv, h.retention) or now + (num(h.retention) or 0), eid)
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

-- The refusals of an execution id that is not one of the call's partition.
local NOT_EXEC_TARGET = 'execution:KEYS[1] must be ff:exec:<execution id> and match ARGV[1]'
local NOT_PARTITION_EID = 'execution:expected an execution id of the partition of KEYS[1]'

-- Validate the (eid, KEYS[1]) pair every per-execution function receives.
local function exec_target(keys, eid)
  local ek = keys[1]
  local tag = tag_of(ek or '')
  if tag == nil or not eid_ok(eid, tag) or ek ~= exec_key(eid) then
    return nil, nil, err('invalid_argument', NOT_EXEC_TARGET)
  end
  return ek, tag
end

-- Validate the KEYS[1] of a function anchored on an index of a partition:
-- the index and its partition's tag, or a refusal.
local function index_target(keys, name)
  local idx = keys[1]
  local tag = tag_of(idx or '')
  if tag == nil or idx ~= idx_key(tag, name) then
    return nil, nil, err('invalid_argument', 'index:KEYS[1] must be the ' .. name .. ' index of a partition')
  end
  return idx, tag
end

---------------------------------------------------------------------------
-- ff_create
-- KEYS: exec [, idempotency record]
-- ARGV: eid, ns, lane, kind, priority, payload, delay_ms, attempt_timeout_ms,
--       deadline_ms, retry, max_reclaims, retention_ms, idem_ttl_ms, flow ('' = none),
--       join, join_cancel (0|1), ntags, (tag, value)* [, budgets, quotas, capabilities]
--       (names separated by commas; admission.lua)
-- -> {1, 'created'|'duplicate', eid, phase, elig, outcome}
--
-- A creation is checked in two parts: its shape (everything but the id, the
-- payload and the idempotency record, which a bulk submit shares between
-- many creations and so checks once) and its own values.

-- Check a shape (ff_create's ARGV without eid and payload) for partition
-- `tag`: the shape, or nil and a refusal. Its `fields` are the record's
-- fields it decides, made once by shape_fields.
local function shape_check(tag, s)
  local c = {s = s}
  local e
  c.ns, e = name_arg(s[1], 'namespace'); if e then return nil, e end
  c.lane, e = name_arg(s[2], 'lane'); if e then return nil, e end
  c.kind, e = name_arg(s[3], 'kind'); if e then return nil, e end
  c.pri, e = int_arg(s[4], 'priority', 0, MAX_PRIORITY); if e then return nil, e end
  c.delay, e = int_arg(s[5], 'delay_ms', 0, MAX_DURATION_MS); if e then return nil, e end
  c.att_timeout, e = int_arg(s[6], 'attempt_timeout_ms', 0, MAX_DURATION_MS); if e then return nil, e end
  c.deadline, e = int_arg(s[7], 'deadline_ms', 0, MAX_DURATION_MS); if e then return nil, e end
  c.retry = s[8]
  if not policy_ok(c.retry) then
    return nil, err('invalid_argument', 'retry:expected <max>:f:<ms> or <max>:e:<initial>:<max> within bounds')
  end
  c.max_reclaims, e = int_arg(s[9], 'max_reclaims', 0, MAX_RECLAIMS); if e then return nil, e end
  c.retention, e = int_arg(s[10], 'retention_ms', 0, MAX_DURATION_MS); if e then return nil, e end
  c.idem_ttl, e = int_arg(s[11], 'idempotency_ttl_ms', 0, MAX_DURATION_MS); if e then return nil, e end
  c.member, e = flow_member_arg(tag, s[12], s[13], s[14]); if e then return nil, e end
  local ntags
  ntags, e = int_arg(s[15], 'tags', 0, MAX_TAGS); if e then return nil, e end
  if #s ~= 15 + 2 * ntags and #s ~= 18 + 2 * ntags then
    return nil, err('invalid_argument', 'tags:expected ' .. ntags .. ' name/value pairs')
  end
  c.adm, e = admission_arg(s[16 + 2 * ntags], s[17 + 2 * ntags], s[18 + 2 * ntags]); if e then return nil, e end
  c.tags = {}
  for i = 0, ntags - 1 do
    local tn, tv = s[16 + 2 * i], s[17 + 2 * i]
    if not name_ok(tn) then return nil, err('invalid_argument', 'tag:bad tag name') end
    if #tv > MAX_TAG_VALUE_BYTES then return nil, err('invalid_argument', 'tag:value of ' .. tn .. ' too long') end
    c.tags[#c.tags + 1] = 'tag.' .. tn
    c.tags[#c.tags + 1] = tv
  end
  return c
end

-- Check one creation of shape `c`: its id, payload and idempotency record.
-- `joined` counts the members a batch adds to each flow so far (a flow's
-- size limit holds for the whole batch). -> the creation, or nil and a refusal.
local function item_check(tag, c, eid, payload, idem_key, joined)
  if not eid_ok(eid, tag) then
    return nil, err('invalid_argument', NOT_PARTITION_EID)
  end
  payload = payload or ''
  if #payload > MAX_PAYLOAD_BYTES then
    return nil, err('payload_too_large', #payload .. ':' .. MAX_PAYLOAD_BYTES)
  end
  if c.idem_ttl > 0 then
    if idem_key == nil or string.sub(idem_key, 1, 8 + #tag + 1) ~= 'ff:idem:' .. tag .. ':' then
      return nil, err('invalid_argument', 'idempotency:KEYS[2] must be the idempotency record of this partition')
    end
  elseif idem_key ~= nil then
    return nil, err('invalid_argument', 'idempotency:a record key needs a positive TTL')
  end
  if c.member then
    local n = (joined[c.member.flow] or 0) + 1
    if c.member.n + n > MAX_FLOW_MEMBERS then
      return nil, err('too_large', 'flow:at most ' .. MAX_FLOW_MEMBERS .. ' members')
    end
    joined[c.member.flow] = n
  end
  return {c = c, eid = eid, ek = exec_key(eid), payload = payload, idem_key = idem_key}
end

-- `opt`: which optional fields a record has, from its creation on ('a'
-- admission, 'd' deadline, 'f' flow; none: ''). Hot paths read an optional
-- field only when the record has it: an absent field costs a search of the
-- whole record.
local function shape_opt(c)
  return (c.adm and 'a' or '') .. (c.deadline > 0 and 'd' or '') .. (c.member and 'f' or '')
end

-- The record fields a shape decides, in the order hot paths read them
-- (a small hash is searched from its start); made once per call (`now`
-- is the call's).
local function shape_fields(c, now)
  if c.fields then return c.fields end
  local s = c.s
  local f = {'opt', shape_opt(c), 'lane', c.lane, 'kind', c.kind, 'pri', int_text(s[4], c.pri),
    'att_timeout', int_text(s[6], c.att_timeout), 'retry', c.retry, 'retention', int_text(s[10], c.retention),
    'max_reclaims', int_text(s[9], c.max_reclaims), 'ns', c.ns}
  if c.deadline > 0 then f[#f + 1] = 'deadline'; f[#f + 1] = ms_text(now + c.deadline) end
  for _, v in ipairs(c.tags) do f[#f + 1] = v end
  if c.adm then f[#f + 1] = 'adm'; f[#f + 1] = c.adm end
  c.fields = f
  return f
end

-- Make a checked creation (or answer its duplicate); with `mv` (a batch)
-- its index moves are deferred, and a creation eligible at once is answered
-- by its id alone.
local function create_apply(tag, it, now, now_s, mv)
  local c, ek, eid = it.c, it.ek, it.eid
  if c.idem_ttl > 0 then
    local existing = redis.call('GET', it.idem_key)
    if existing and redis.call('EXISTS', exec_key(existing)) == 1 then
      return ok('duplicate', existing, state_of(exec_key(existing)))
    end
  end
  if redis.call('EXISTS', ek) == 1 then
    return err('invalid_argument', 'execution:id already exists')
  end
  -- One write of every field, the state first: every transition reads it.
  -- A flow member's state is set by flows.lua from its dependencies.
  -- Counters (epoch, retries, reclaims) start absent: absent reads as 0.
  local elig, due = 'eligible', ''
  if c.member then
    elig = ''
  elseif c.delay > 0 then
    elig, due = 'delayed', mv and batch_after(mv, c.s[5]) or now + c.delay
  end
  if c.idem_ttl > 0 then
    redis.call('HSET', ek, 'phase', 'runnable', 'elig', elig, 'due', due, 'payload', it.payload,
      'created', now_s, 'idem', it.idem_key, unpack(shape_fields(c, now)))
    redis.call('SET', it.idem_key, eid, 'PX', c.idem_ttl)
  else
    redis.call('HSET', ek, 'phase', 'runnable', 'elig', elig, 'due', due, 'payload', it.payload,
      'created', now_s, unpack(shape_fields(c, now)))
  end
  idx_sadd(mv, idx_key(tag, 'all'), eid)
  if c.deadline > 0 then idx_due(mv, tag, 'deadline', mv and batch_after(mv, c.s[7]) or now + c.deadline, eid) end
  if c.member then
    flow_member_created(ek, tag, eid, c.member, now, c.delay, c.lane, c.pri)
    return ok('created', eid, state_of(ek))
  elseif c.delay > 0 then
    idx_due(mv, tag, 'delayed', due, eid)
    return ok('created', eid, 'runnable', 'delayed', '')
  end
  index_eligible(tag, eid, c.lane, c.pri, now, mv)
  -- (a batch answers its common case short: ff_create_many)
  if mv then return eid end
  return ok('created', eid, 'runnable', 'eligible', '')
end

local function ff_create(keys, args)
  -- (item_check checks the id; KEYS[1] must then be its record)
  local tag = tag_of(keys[1] or '')
  if tag == nil then return err('invalid_argument', NOT_EXEC_TARGET) end
  local s = {unpack(args, 2, 5)}
  for i = 7, #args do s[#s + 1] = args[i] end
  local c, e = shape_check(tag, s)
  if e then return e end
  local it
  it, e = item_check(tag, c, args[1], args[6], keys[2], {})
  if e then return e end
  if it.ek ~= keys[1] then return err('invalid_argument', NOT_EXEC_TARGET) end
  local now = now_ms()
  return create_apply(tag, it, now, tostring(now))
end

-- ff_create_many: many creations on one partition in one call (bulk submit:
-- the per-call costs, the checks of a shared shape and the index moves are
-- paid once per batch). Every creation is checked before anything is written
-- (one bad one refuses the call); each is then answered as its ff_create
-- would be.
-- KEYS: the partition's `all` set
-- ARGV: n, nshapes, (k, shape of k values) * nshapes,
--       (shape number (1-based), eid, payload, idempotency record key ('' = none)) * n
--       (a shape: ff_create's ARGV without eid and payload)
-- -> {1, n, reply * n}, each reply that of ff_create, but the common one,
--    created and eligible, is the execution id alone (short to send)
local function ff_create_many(keys, args)
  local _, tag, e = index_target(keys, 'all')
  if e then return e end
  local n, nshapes
  n, e = int_arg(args[1], 'count', 1, MAX_CLAIM_BATCH); if e then return e end
  nshapes, e = int_arg(args[2], 'shapes', 1, n); if e then return e end
  local shapes, at = {}, 3
  for i = 1, nshapes do
    local k
    k, e = int_arg(args[at], 'shape length', 15, 18 + 2 * MAX_TAGS); if e then return e end
    if at + k > #args then return err('invalid_argument', 'shapes:expected ' .. nshapes .. ' shapes') end
    shapes[i], e = shape_check(tag, {unpack(args, at + 1, at + k)})
    if e then return e end
    at = at + 1 + k
  end
  if #args ~= at - 1 + 4 * n then return err('invalid_argument', 'count:expected ' .. n .. ' creations of 4 arguments') end
  local items, joined = {}, {}
  for i = 1, n do
    local c = shapes[tonumber(args[at])]
    if not c then return err('invalid_argument', 'shape:expected a shape number in 1..' .. nshapes) end
    local idem_key = args[at + 3]
    if idem_key == '' then idem_key = nil end
    items[i], e = item_check(tag, c, args[at + 1], args[at + 2], idem_key, joined)
    if e then return e end
    at = at + 4
  end
  local now = now_ms()
  local mv = new_moves(now)
  local out = {1, n}
  local now_s = tostring(now)
  for i = 1, n do out[i + 2] = create_apply(tag, items[i], now, now_s, mv) end
  apply_moves(mv)
  return out
end

---------------------------------------------------------------------------
-- ff_claim: hand out up to n eligible executions of one lane of one partition.
-- KEYS: eligible index of the lane
-- ARGV: lane, worker, worker_instance, lease_ttl_ms, n, lease_id * n [, capabilities [, skip]]
-- -> {1, count, lease_exp, (eid, epoch, kind, payload) * count,
--     nadm, adm * nadm, nskipped, (eid, capabilities) * nskipped}
-- The k-th execution handed out holds the k-th lease id; its epoch is its
-- attempt number too (one attempt per claim). adm: what it draws
-- on (admission.lua; '' = none), listed (nadm = count) only when one of them
-- draws on something (nadm = 0). (Short: each reply element costs the server
-- ~0.09 us to send; 4 per execution, 8 before.) An execution needing a
-- capability the worker lacks is skipped (left eligible) and listed; up to
-- ROUTE_LOOKAHEAD of them are looked past. skip: start that far into the
-- index (past those an earlier call of the same claim skipped).
-- A kind read from a record is a name (checked once per claim call and kind).
local function kind_ok(kinds, kind)
  local good = name_ok(kind)
  if good then kinds[kind] = true end
  return good
end

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
  local exp = now + ttl
  local out = {1, 0, exp}
  local claimed, admitted = 0, false
  -- Index moves are made once for the whole batch (the hot path of workers).
  local taken, leased, timed, adms, skipped, kinds = {}, {}, {}, {}, {}, {}
  local cands = redis.call('ZRANGE', ek_idx, skip, skip + n - 1 + ROUTE_LOOKAHEAD)
  -- Times as text once per batch (a number argument is formatted on every
  -- call; %.14g is exact for millisecond times). `by`: who holds the lease,
  -- one field '<worker> <instance>' (names have no spaces).
  local exp_s, by = tostring(exp), worker .. ' ' .. wi
  for _, eid in ipairs(cands) do
    if claimed >= n then break end
    local ek = eid_ok(eid, tag) and exec_key(eid)
    -- (positional: this runs once per claimed execution)
    local v = ek and redis.call('HMGET', ek, 'phase', 'elig', 'lane', 'epoch', 'att_timeout', 'kind', 'payload', 'opt')
    local adm, deadline_s, needs, epoch, att_timeout, deadline
    if v then
      local o = optional_fields(ek, v[8], 'adm', 'deadline')
      adm, deadline_s = o[1], o[2]
      needs = adm and needed_capabilities(adm)
      epoch, att_timeout, deadline = counter(v[4] or nil), counter(v[5] or nil), deadline_s and num(deadline_s)
    end
    if needs and needs ~= '' and v[1] == 'runnable' and v[2] == 'eligible' and not capable(needs, caps) then
      if #skipped < 2 * ROUTE_LOOKAHEAD then
        skipped[#skipped + 1] = eid
        skipped[#skipped + 1] = needs
      end
    elseif not v or v[1] ~= 'runnable' or v[2] ~= 'eligible' or v[3] ~= lane
        or epoch == nil or att_timeout == nil
        or (deadline_s and deadline == nil) or not (kinds[v[6]] or kind_ok(kinds, v[6])) then
      -- The index disagrees with the record, or the record is unusable: drop
      -- the entry (the reconciler re-indexes a sound record; a broken one
      -- waits for an operator rather than failing every claim).
      taken[#taken + 1] = eid
    elseif deadline and deadline <= now then
      make_terminal(nil, ek, tag, eid, read_state(ek), 'expired', now, 'error', 'execution deadline passed')
    else
      -- Each claim starts one attempt under one new lease: the epoch counts
      -- both (the attempt number is the epoch).
      claimed = claimed + 1
      local lease_id = args[5 + claimed]
      epoch = epoch + 1
      taken[#taken + 1] = eid
      leased[#leased + 1] = exp_s
      leased[#leased + 1] = eid
      if att_timeout > 0 then
        redis.call('HSET', ek, 'phase', 'active', 'elig', '', 'lease_id', lease_id, 'epoch', count_text(epoch),
          'lease_exp', exp_s, 'by', by, 'att_due', now + att_timeout)
        timed[#timed + 1] = now + att_timeout
        timed[#timed + 1] = eid
      else
        redis.call('HSET', ek, 'phase', 'active', 'elig', '', 'lease_id', lease_id, 'epoch', count_text(epoch),
          'lease_exp', exp_s, 'by', by)
      end
      local k = #out
      out[k + 1] = eid; out[k + 2] = epoch; out[k + 3] = v[6]; out[k + 4] = v[7] or ''
      adms[#adms + 1] = adm or ''
      admitted = admitted or adm ~= false
    end
  end
  if admitted then
    out[#out + 1] = #adms
    for _, a in ipairs(adms) do out[#out + 1] = a end
  else
    out[#out + 1] = 0
  end
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
  local v = redis.call('HMGET', ek, 'phase', 'lease_id', 'epoch', 'att_timeout', 'retention', 'opt')
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
  h.phase, h.elig, h.att_due, h.retention = 'active', nil, v[4] ~= '0' and v[4] or nil, v[5] or nil
  h.deadline, h.flow = o[1] or nil, o[2] or nil
  h.ek, h.tag, h.eid, h.lease_id, h.epoch = ek, tag, eid, lease_id, epoch
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
  local retries = tonumber(r[2] or '0')
  local max_retries = tonumber(string.match(r[1] or '0', '^(%d+)')) or 0
  if retryable and retries < max_retries then
    local due = now + backoff_ms(r[1], retries + 1)
    leave_live(h.ek, h.tag, h.eid, h, mv)
    make_delayed(mv, h.ek, h.tag, h.eid, due, 'error', message, 'att_state', 'failed', 'retries', retries + 1,
      'fence', seal(h, 'fail', 'retry_scheduled', due))
    return ok('retry_scheduled', due, 0)
  end
  make_terminal(mv, h.ek, h.tag, h.eid, h, 'failed', now,
    'error', message, 'att_state', 'failed', 'fence', seal(h, 'fail', 'failed', 0))
  return ok('failed', 0, 0)
end

-- ff_complete  ARGV: eid, lease_id, epoch, result -> {1, 'completed', 0, replayed}
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

-- ff_fail  ARGV: eid, lease_id, epoch, error, retryable(0|1)
-- -> {1, 'retry_scheduled', due, replayed} | {1, 'failed', 0, replayed}
local function ff_fail(keys, args)
  if args[5] ~= '0' and args[5] ~= '1' then return err('invalid_argument', 'retryable:expected 0 or 1') end
  local h, e = fenced(keys, args, 'fail')
  if e then return e end
  return end_fail(h, args[4] or '', args[5] == '1', now_ms())
end

-- ff_end_many: complete or fail many attempts of one partition in one call
-- (a worker's reports, batched: the per-call costs and the index moves are
-- paid once per batch). Each report is checked and answered on its own, as
-- its single call would be (a lease id or epoch that is not one is refused
-- on its own, by lease_check); a malformed batch (count, operation, an id
-- of another partition, flag, size) refuses the whole call.
-- KEYS: the partition's lease_expiry index
-- ARGV: n, (op ('complete'|'fail'), eid, lease_id, epoch, result or error, retryable (0|1)) * n
-- -> {1, n, reply * n}, each reply that of ff_complete or ff_fail, but the
--    common one, completed and not a replay, is the integer 1 (short to send)
local END_OPS = {complete = true, fail = true}

local function ff_end_many(keys, args)
  local _, tag, e = index_target(keys, 'lease_expiry')
  if e then return e end
  local n
  n, e = int_arg(args[1], 'count', 1, MAX_CLAIM_BATCH)
  if e then return e end
  if #args ~= 1 + 6 * n then return err('invalid_argument', 'count:expected ' .. n .. ' reports of 6 arguments') end
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
  return out
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
  make_delayed(nil, h.ek, h.tag, h.eid, due, 'att_state', 'delayed', 'fence', seal(h, 'delay', 'delayed', due))
  return ok('delayed', due, 0)
end

-- ff_release: the worker hands the execution back unfinished (e.g. it is
-- shutting down): eligible again at once, no retry or reclaim used.
-- ARGV: eid, lease_id, epoch -> {1, 'released', 0, replayed}
local function ff_release(keys, args)
  local h, e = fenced(keys, args, 'release')
  if e then return e end
  leave_live(h.ek, h.tag, h.eid, h)
  redis.call('HSET', h.ek, 'att_state', 'released', 'fence', seal(h, 'release', 'released', 0))
  local lp = redis.call('HMGET', h.ek, 'lane', 'pri')
  make_eligible(h.ek, h.tag, h.eid, lp[1], tonumber(lp[2]) or 0, now_ms())
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
    make_terminal(nil, ek, tag, eid, h, 'cancelled', now_ms(), 'error', reason, 'att_state', 'cancelled')
  else
    make_terminal(nil, ek, tag, eid, h, 'cancelled', now_ms(), 'error', reason)
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
register('ff_create_many', ff_create_many)
register('ff_claim', ff_claim)
register('ff_renew', ff_renew)
register('ff_complete', ff_complete)
register('ff_fail', ff_fail)
register('ff_end_many', ff_end_many)
register('ff_delay', ff_delay)
register('ff_release', ff_release)
register('ff_cancel', ff_cancel)
register_ro('ff_get', ff_get)
