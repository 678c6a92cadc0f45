-- Creation: ff_create and ff_create_many (a bulk submit). Index moves and
-- the state rule are execution.lua's.

local MAX_CLAIM_BATCH, MAX_DURATION_MS = F.MAX_CLAIM_BATCH, F.MAX_DURATION_MS
local MAX_FLOW_MEMBERS, MAX_PAYLOAD_BYTES = F.MAX_FLOW_MEMBERS, F.MAX_PAYLOAD_BYTES
local MAX_PRIORITY, MAX_RECLAIMS, MAX_TAGS = F.MAX_PRIORITY, F.MAX_RECLAIMS, F.MAX_TAGS
local MAX_TAG_VALUE_BYTES = F.MAX_TAG_VALUE_BYTES
local ABSENT, ABSENT_FIELDS = F.ABSENT, F.ABSENT_FIELDS
local err, int_arg, int_text, name_arg = P.err, P.int_arg, P.int_text, P.name_arg
local name_ok, now_ms, ok, register = P.name_ok, P.now_ms, P.ok, P.register
local eid_ok, exec_key, idem_prefix, idx_key = K.eid_ok, K.exec_key, K.idem_prefix, K.idx_key
local tag_of = K.tag_of
local apply_moves, batch_after, idx_due = MV.apply_moves, MV.batch_after, MV.idx_due
local idx_sadd = MV.idx_sadd
local ms_text, new_moves = MV.ms_text, MV.new_moves
local ADMISSION_HOOKS, FLOW_HOOKS = EXEC.ADMISSION_HOOKS, EXEC.FLOW_HOOKS
local NOT_EXEC_TARGET, NOT_PARTITION_EID = EXEC.NOT_EXEC_TARGET, EXEC.NOT_PARTITION_EID
local index_eligible, index_target = EXEC.index_eligible, EXEC.index_target
local count_moves = EXEC.count_moves
local policy_ok, state_of = EXEC.policy_ok, EXEC.state_of

-- ff_create
-- KEYS: exec [, idempotency record]
-- ARGV: eid, ns, lane, kind, priority, payload, delay_ms, attempt_timeout_ms,
--       deadline_ms, retry, max_reclaims, retention_ms, idem_ttl_ms, flow ('' = none),
--       join, join_cancel (0|1), ntags, (tag, value)* [, budgets, quotas, capabilities]
--       (names separated by commas; admission.lua)
-- -> {1, 'created'|'duplicate', eid, phase, elig, outcome}
-- 'duplicate': the idempotency record names another execution (an earlier
-- creation with the key). The same call sent again (same id) is answered
-- 'created', with the execution's state now (same_creation).
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
    return nil, err('invalid_argument', 'retry:expected <max>:f:<ms> or <max>:e:<initial>:<max> within bounds, optionally then :full or :equal')
  end
  c.max_reclaims, e = int_arg(s[9], 'max_reclaims', 0, MAX_RECLAIMS); if e then return nil, e end
  c.retention, e = int_arg(s[10], 'retention_ms', 0, MAX_DURATION_MS); if e then return nil, e end
  c.idem_ttl, e = int_arg(s[11], 'idempotency_ttl_ms', 0, MAX_DURATION_MS); if e then return nil, e end
  c.member, e = FLOW_HOOKS.member_arg(tag, s[12], s[13], s[14]); if e then return nil, e end
  local ntags
  ntags, e = int_arg(s[15], 'tags', 0, MAX_TAGS); if e then return nil, e end
  if #s ~= 15 + 2 * ntags and #s ~= 18 + 2 * ntags then
    return nil, err('invalid_argument', 'tags:expected ' .. ntags .. ' name/value pairs')
  end
  c.adm, e = ADMISSION_HOOKS.admission_arg(s[16 + 2 * ntags], s[17 + 2 * ntags], s[18 + 2 * ntags]); if e then return nil, e end
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
    local prefix = idem_prefix(tag)
    if idem_key == nil or string.sub(idem_key, 1, #prefix) ~= prefix then
      return nil, err('invalid_argument', 'idempotency:KEYS[2] must be the idempotency record of this partition')
    end
  elseif idem_key ~= nil then
    return nil, err('invalid_argument', 'idempotency:a record key needs a positive TTL')
  end
  local ek = exec_key(eid)
  if c.member then
    local n = (joined[c.member.flow] or 0) + 1
    if c.member.cancelled or c.member.n + n > MAX_FLOW_MEMBERS then
      -- (a record under this id is counted already, and create_apply answers
      -- it: the repeat of a creation whose reply was lost, or a refusal)
      if redis.call('EXISTS', ek) == 0 then
        if c.member.cancelled then return nil, err('flow_cancelled', c.member.flow) end
        return nil, err('too_large', 'flow:at most ' .. MAX_FLOW_MEMBERS .. ' members')
      end
    else
      joined[c.member.flow] = n
    end
  end
  return {c = c, eid = eid, ek = ek, payload = payload, idem_key = idem_key}
end

-- `opt`: which optional fields a record has, from its creation on ('a'
-- admission, 'd' deadline, 'f' flow; none: ''). Hot paths read an optional
-- field only when the record has it: an absent field costs a search of the
-- whole record.
local function shape_opt(c)
  return (c.adm and 'a' or '') .. (c.deadline > 0 and 'd' or '') .. (c.member and 'f' or '')
end

-- The record fields a shape decides, in the order hot paths read them
-- (a small hash is searched from its start), but those at their ABSENT value
-- (core/src/contract/record.rs: absent reads as it); made once per call
-- (`now` is the call's).
local function shape_fields(c, now)
  if c.fields then return c.fields end
  local s = c.s
  local f = {'opt', shape_opt(c), 'lane', c.lane, 'kind', c.kind}
  local values = {pri = int_text(s[4], c.pri), att_timeout = int_text(s[6], c.att_timeout), retry = c.retry,
    retention = int_text(s[10], c.retention), max_reclaims = int_text(s[9], c.max_reclaims), ns = c.ns}
  for _, name in ipairs(ABSENT_FIELDS) do
    local v = values[name]
    if v ~= ABSENT[name] then f[#f + 1] = name; f[#f + 1] = v end
  end
  if c.deadline > 0 then f[#f + 1] = 'deadline'; f[#f + 1] = ms_text(now + c.deadline) end
  for _, v in ipairs(c.tags) do f[#f + 1] = v end
  if c.adm then f[#f + 1] = 'adm'; f[#f + 1] = c.adm end
  c.fields = f
  return f
end

-- Is the record under the creation's id this creation, made by an earlier
-- send of the same call (its reply lost)? Every field a creation fixes, which
-- nothing changes later, is as sent (but the deadline, a time: its presence
-- is in `opt`); so is the payload, but a flow member's, which a parent's
-- result may replace. (Read only when the id is taken: not a hot path.)
local function same_creation(it, now)
  local c = it.c
  local m = c.member or {}
  local names = {'idem', 'flow', 'join', 'jc'}
  local want = {it.idem_key or false, m.flow or false, m.join or false, m.jc or false}
  if not c.member then
    names[5], want[5] = 'payload', it.payload
  end
  local f = shape_fields(c, now)
  local listed = {}
  for i = 1, #f, 2 do
    if f[i] ~= 'deadline' then
      names[#names + 1], want[#want + 1] = f[i], f[i + 1]
      listed[f[i]] = true
    end
  end
  -- (a field left out was at its ABSENT value, and must still read as it)
  for _, name in ipairs(ABSENT_FIELDS) do
    if not listed[name] then names[#names + 1], want[#want + 1] = name, ABSENT[name] end
  end
  local have = redis.call('HMGET', it.ek, unpack(names))
  for i = 1, #names do
    if (have[i] or ABSENT[names[i]] or false) ~= want[i] then return false end
  end
  return true
end

-- Make a checked creation (or answer its duplicate); with `mv` (a batch)
-- its index moves are deferred, and a creation eligible at once is answered
-- by its id alone. A caller that has just seen no record under the id sets
-- `it.absent`; `it.extra` (field, value, ...) is written with the record
-- (a schedule's fire: its name and fire time), in the same HSET.
local function create_apply(tag, it, now, now_s, mv)
  local c, ek, eid = it.c, it.ek, it.eid
  if c.idem_ttl > 0 then
    local existing = redis.call('GET', it.idem_key)
    -- (a record naming this very id is this call's own: answered below)
    if existing and existing ~= eid and redis.call('EXISTS', exec_key(existing)) == 1 then
      return ok('duplicate', existing, state_of(exec_key(existing)))
    end
  end
  if not it.absent and redis.call('EXISTS', ek) == 1 then
    -- The call sent again after its reply was lost is answered as the first
    -- was (in the state the execution is in now); another creation under a
    -- taken id is refused.
    if same_creation(it, now) then return ok('created', eid, state_of(ek)) end
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
  elseif it.extra then
    local f, x = shape_fields(c, now), it.extra
    local n = #x
    for i = 1, #f do x[n + i] = f[i] end
    redis.call('HSET', ek, 'phase', 'runnable', 'elig', elig, 'due', due, 'payload', it.payload,
      'created', now_s, unpack(x))
  else
    redis.call('HSET', ek, 'phase', 'runnable', 'elig', elig, 'due', due, 'payload', it.payload,
      'created', now_s, unpack(shape_fields(c, now)))
  end
  idx_sadd(mv, idx_key(tag, 'all'), eid)
  -- (a flow member is counted once placed: member_created)
  if not c.member then count_moves(tag, c.lane, nil, elig, 1) end
  if c.deadline > 0 then idx_due(mv, tag, 'deadline', mv and batch_after(mv, c.s[7]) or now + c.deadline, eid) end
  if c.member then
    FLOW_HOOKS.member_created(ek, tag, eid, c.member, now, c.delay, c.lane, c.pri)
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
  -- (shapes by their number as text: an item's is looked up as sent, with
  -- no conversion per item)
  local shapes, at = {}, 3
  for i = 1, nshapes do
    local k
    k, e = int_arg(args[at], 'shape length', 15, 18 + 2 * MAX_TAGS); if e then return e end
    if at + k > #args then return err('invalid_argument', 'shapes:expected ' .. nshapes .. ' shapes') end
    shapes[tostring(i)], e = shape_check(tag, {unpack(args, at + 1, at + k)})
    if e then return e end
    at = at + 1 + k
  end
  if #args ~= at - 1 + 4 * n then return err('invalid_argument', 'count:expected ' .. n .. ' creations of 4 arguments') end
  local items, joined = {}, {}
  for i = 1, n do
    local c = shapes[args[at]]
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

register('ff_create', ff_create)
register('ff_create_many', ff_create_many)

--- @export shape_check, item_check, create_apply
