-- Suspension, waitpoints and signals (layout in waitpoint.lua).
--
-- A worker that must wait for something outside creates waitpoints (pending:
-- a signal that arrives before the suspension is kept, not lost), hands their
-- tokens out, and suspends on them with a resume condition and a timeout; it
-- loses its lease. A signal that satisfies the condition makes the execution
-- eligible again (the next claim is its next attempt); the timeout applies its
-- behaviour. Every key is on the execution's partition: each call is one slot.

local MAX_CONDITION_NAMES, MAX_DURATION_MS = F.MAX_CONDITION_NAMES, F.MAX_DURATION_MS
local MAX_EXECUTION_SIGNALS = F.MAX_EXECUTION_SIGNALS
local MAX_EXECUTION_WAITPOINTS = F.MAX_EXECUTION_WAITPOINTS
local MAX_SECRET_BYTES, MAX_SIGNAL_PAYLOAD_BYTES = F.MAX_SECRET_BYTES, F.MAX_SIGNAL_PAYLOAD_BYTES
local MAX_SUSPENSION_WAITPOINTS, MIN_SECRET_BYTES = F.MAX_SUSPENSION_WAITPOINTS, F.MIN_SECRET_BYTES
local err, hash_reply, hex32_ok, hmget = P.err, P.hash_reply, P.hex32_ok, P.hmget
local int_arg, name_arg, name_ok, now_ms = P.int_arg, P.name_arg, P.name_ok, P.now_ms
local num, ok, register, register_ro = P.num, P.ok, P.register, P.register_ro
local eid_ok, exec_key, idx_key, secret_key = K.eid_ok, K.exec_key, K.idx_key, K.secret_key
local tag_of, wp_key = K.tag_of, K.wp_key
local hex_to_bytes, hmac_states = HMAC.hex_to_bytes, HMAC.hmac_states
local words_to_hex = HMAC.words_to_hex
local check_token, end_suspension, make_token = WP.check_token, WP.end_suspension, WP.make_token
local batch_key, defer_zrem, zadd_due = MV.batch_key, MV.defer_zrem, MV.zadd_due
local exec_target, leave_live, make_eligible = EXEC.exec_target, EXEC.leave_live, EXEC.make_eligible
local make_terminal, count_from = EXEC.make_terminal, EXEC.count_from
local read_state = EXEC.read_state
local fenced, seal = LEASE.fenced, LEASE.seal
local batch_function, run_batch, settle = SCAN.batch_function, SCAN.run_batch, SCAN.settle

local TIMEOUT_BEHAVIOURS = {fail = true, cancel = true, expire = true, resume = true}

-- A resume condition: 'any' | 'count:<n>' | 'any:<names>' | 'all:<names>'
-- (names comma separated). -> {kind=, n=, names={...}} or nil, refusal.
local function parse_condition(s)
  if s == 'any' then return {kind = 'count', n = 1} end
  local n = string.match(s or '', '^count:(%d+)$')
  if n then
    n = tonumber(n)
    if n < 1 or n > MAX_EXECUTION_SIGNALS then
      return nil, err('invalid_argument', 'condition:count must be in 1..' .. MAX_EXECUTION_SIGNALS)
    end
    return {kind = 'count', n = n}
  end
  local kind, list = string.match(s or '', '^(%a+):(.+)$')
  if kind ~= 'any' and kind ~= 'all' then
    return nil, err('invalid_argument', 'condition:expected any, count:<n>, any:<names> or all:<names>')
  end
  local names = {}
  for name in string.gmatch(list .. ',', '([^,]*),') do
    if not name_ok(name) then return nil, err('invalid_argument', 'condition:bad signal name') end
    names[#names + 1] = name
  end
  if #names > MAX_CONDITION_NAMES then
    return nil, err('invalid_argument', 'condition:at most ' .. MAX_CONDITION_NAMES .. ' names')
  end
  return {kind = kind, names = names}
end

-- Is the condition met by the signals on these waitpoints?
local function condition_met(cond, tag, wpids)
  local total, seen = 0, ''
  for _, wpid in ipairs(wpids) do
    local w = hmget(wp_key(tag, wpid), 'n', 'names')
    total = total + (tonumber(w.n) or 0)
    seen = seen .. (w.names or '')
  end
  if cond.kind == 'count' then return total >= cond.n end
  for _, name in ipairs(cond.names) do
    local has = string.find(seen, ',' .. name .. ',', 1, true) ~= nil
    if cond.kind == 'any' and has then return true end
    if cond.kind == 'all' and not has then return false end
  end
  return cond.kind == 'all'
end

local function split_ids(s)
  local out = {}
  for id in string.gmatch(s or '', '[0-9a-f]+') do out[#out + 1] = id end
  return out
end

-- suspended -> eligible (the waitpoints close); counted in `resumes`.
local function resume(ek, tag, eid, now)
  local h = hmget(ek, 'phase', 'lane', 'pri', 'resumes', 'flow')
  end_suspension(ek, tag, eid)
  redis.call('HSET', ek, 'resumes', (tonumber(h.resumes) or 0) + 1)
  make_eligible(ek, tag, eid, h, tonumber(h.pri) or 0, now)
end

-- A waitpoint id argument that belongs to `eid` (or does not exist yet).
-- -> its state ('' when new) or nil and a refusal.
local function own_waitpoint(tag, eid, wpid)
  if not hex32_ok(wpid) then return nil, err('invalid_argument', 'waitpoint:expected 32 hex digits') end
  local w = hmget(wp_key(tag, wpid), 'eid', 'state')
  if w.eid == nil then return '' end
  if w.eid ~= eid then return nil, err('invalid_argument', 'waitpoint:belongs to another execution') end
  return w.state or ''
end

-- Room for `extra` more waitpoints on the execution? -> the new `wps` value.
local function add_waitpoints(ek, new_ids)
  local wps = redis.call('HGET', ek, 'wps') or ''
  local count = #split_ids(wps)
  if count + #new_ids > MAX_EXECUTION_WAITPOINTS then
    return nil, err('limit_reached', 'waitpoints:at most ' .. MAX_EXECUTION_WAITPOINTS .. ' per execution')
  end
  for _, id in ipairs(new_ids) do
    wps = (wps == '' and id) or (wps .. ',' .. id)
  end
  return wps
end

---------------------------------------------------------------------------
-- ff_create_waitpoint: a pending waitpoint for a live execution; it expires
-- after ttl_ms unless a suspension takes it up. Repeating the call answers
-- the same (a lost reply is retried safely).
-- KEYS: exec  ARGV: eid, wpid, ttl_ms -> {1, 'created'|'existing', token, expires}
local function ff_create_waitpoint(keys, args)
  local eid, wpid = args[1], args[2]
  local ek, tag, e = exec_target(keys, eid)
  if e then return e end
  local ttl
  ttl, e = int_arg(args[3], 'ttl_ms', 1, MAX_DURATION_MS); if e then return e end
  local state
  state, e = own_waitpoint(tag, eid, wpid); if e then return e end
  local token
  token, e = make_token(tag, eid, wpid); if e then return e end
  if state ~= '' then
    return ok('existing', token, tonumber(redis.call('HGET', wp_key(tag, wpid), 'expires')) or 0)
  end
  local phase = redis.call('HGET', ek, 'phase')
  if phase == false then return err('not_found', eid) end
  if phase == 'terminal' then return err('already_terminal', redis.call('HGET', ek, 'outcome') or '') end
  local wps
  wps, e = add_waitpoints(ek, {wpid}); if e then return e end
  local now = now_ms()
  redis.call('HSET', wp_key(tag, wpid), 'eid', eid, 'state', 'pending', 'created', now, 'expires', now + ttl, 'n', 0)
  redis.call('HSET', ek, 'wps', wps)
  zadd_due(tag, 'pending_waitpoints', now + ttl, wpid)
  return ok('created', token, now + ttl)
end

-- The reply of a suspend: outcome, timeout due (0: none), replayed, then the
-- token of each waitpoint.
local function suspend_reply(tag, eid, wpids, outcome, due, replayed)
  local out = {1, outcome, due, replayed}
  for _, wpid in ipairs(wpids) do
    local token, e = make_token(tag, eid, wpid)
    if e then return e end
    out[#out + 1] = token
  end
  return out
end

---------------------------------------------------------------------------
-- ff_suspend: the lease holder suspends on waitpoints (pending ones of this
-- execution are taken up, unknown ids are created). Signals already on them
-- count: when they meet the condition the execution is eligible again at once.
-- KEYS: exec
-- ARGV: eid, lease_id, epoch, condition, timeout_ms (0: none), on_timeout, n, wpid * n
-- -> {1, 'suspended'|'resumed', timeout_due, replayed, token * n}
local function ff_suspend(keys, args)
  local cond, e = parse_condition(args[4])
  if e then return e end
  local timeout, n
  timeout, e = int_arg(args[5], 'timeout_ms', 0, MAX_DURATION_MS); if e then return e end
  if not TIMEOUT_BEHAVIOURS[args[6] or ''] then
    return err('invalid_argument', 'on_timeout:expected fail, cancel, expire or resume')
  end
  n, e = int_arg(args[7], 'waitpoints', 1, MAX_SUSPENSION_WAITPOINTS); if e then return e end
  if #args ~= 7 + n then return err('invalid_argument', 'waitpoints:expected ' .. n .. ' ids') end
  local wpids, dup = {}, {}
  for i = 1, n do
    local id = args[7 + i]
    if dup[id] then return err('invalid_argument', 'waitpoints:listed twice') end
    dup[id] = true
    wpids[i] = id
  end
  local h
  h, e = fenced(keys, args, 'suspend')
  if e then
    -- A repeat of an accepted suspend answers with the tokens again.
    if e[1] == 1 then
      local _, tag = exec_target(keys, args[1])
      for _, wpid in ipairs(wpids) do
        local state, refused = own_waitpoint(tag, args[1], wpid)
        if refused then return refused end
        if state == '' then return err('invalid_argument', 'waitpoints:not those of the suspension') end
      end
      return suspend_reply(tag, args[1], wpids, e[2], e[3], 1)
    end
    return e
  end
  local ek, tag, eid = h.ek, h.tag, h.eid
  local fresh, taken = {}, {}
  for _, wpid in ipairs(wpids) do
    local state
    state, e = own_waitpoint(tag, eid, wpid); if e then return e end
    if state == '' then
      fresh[#fresh + 1] = wpid
    elseif state == 'pending' then
      taken[#taken + 1] = wpid
    else
      return err('waitpoint_closed', wpid .. ':' .. state)
    end
  end
  local wps
  wps, e = add_waitpoints(ek, fresh); if e then return e end
  -- (the tokens are made before any write: no secret, no change)
  local reply = suspend_reply(tag, eid, wpids, 'suspended', 0, 0)
  if reply[1] ~= 1 then return reply end

  local now = now_ms()
  for _, wpid in ipairs(fresh) do
    redis.call('HSET', wp_key(tag, wpid), 'eid', eid, 'state', 'active', 'created', now, 'n', 0)
  end
  for _, wpid in ipairs(taken) do
    redis.call('HSET', wp_key(tag, wpid), 'state', 'active')
    redis.call('HDEL', wp_key(tag, wpid), 'expires')
  end
  if #taken > 0 then redis.call('ZREM', idx_key(tag, 'pending_waitpoints'), unpack(taken)) end
  if #fresh > 0 then redis.call('HSET', ek, 'wps', wps) end
  leave_live(ek, tag, eid, h)
  local list = table.concat(wpids, ',')
  if condition_met(cond, tag, wpids) then
    -- Signals that came early already satisfy it: no need to wait.
    for _, wpid in ipairs(wpids) do redis.call('HSET', wp_key(tag, wpid), 'state', 'closed') end
    redis.call('HSET', ek, 'att_state', 'suspended', 'resumes', (tonumber(redis.call('HGET', ek, 'resumes')) or 0) + 1,
      'fence', seal(h, 'suspend', 'resumed', 0))
    make_eligible(ek, tag, eid, h, tonumber(redis.call('HGET', ek, 'pri')) or 0, now)
    reply[2] = 'resumed'
    return reply
  end
  local due = timeout > 0 and now + timeout or 0
  redis.call('HSET', ek, 'phase', 'suspended', 'elig', '', 'due', '', 'att_state', 'suspended',
    'susp_wps', list, 'susp_cond', args[4], 'susp_tb', args[6], 'susp_at', now,
    'fence', seal(h, 'suspend', 'suspended', due))
  count_from(tag, h, 'suspended', now)
  if due > 0 then
    redis.call('HSET', ek, 'susp_due', due)
    zadd_due(tag, 'suspension_timeout', due, eid)
  end
  reply[3] = due
  return reply
end

---------------------------------------------------------------------------
-- ff_signal: deliver a signal to a waitpoint, proven by its token. Kept on
-- the waitpoint (a pending one buffers it for the suspension to come); when it
-- completes its suspension's condition, the execution resumes. With an
-- idempotency key, a repeat is answered as the first was.
-- KEYS: exec, waitpoint
-- ARGV: eid, wpid, token, name, payload, idempotency key ('' none)
-- -> {1, 'accepted'|'duplicate', signal index, effect}; effect: 'buffered'
--    (pending waitpoint), 'recorded' (condition not met yet), 'resumed'
local function ff_signal(keys, args)
  local eid, wpid, token, name, payload, idem = args[1], args[2], args[3], args[4], args[5] or '', args[6] or ''
  local ek, tag, e = exec_target(keys, eid)
  if e then return e end
  if not hex32_ok(wpid) or keys[2] ~= wp_key(tag, wpid) then
    return err('invalid_argument', 'waitpoint:KEYS[2] must be the waitpoint of ARGV[2]')
  end
  name, e = name_arg(name, 'signal'); if e then return e end
  if #payload > MAX_SIGNAL_PAYLOAD_BYTES then
    return err('payload_too_large', #payload .. ':' .. MAX_SIGNAL_PAYLOAD_BYTES)
  end
  if #idem > 200 or string.find(idem, '[^!-~]') then
    return err('invalid_argument', 'idempotency:at most 200 printable characters')
  end
  local now = now_ms()
  e = check_token(tag, eid, wpid, token, now)
  if e then return e end
  local wk = keys[2]
  local w = hmget(wk, 'eid', 'state', 'n', 'names')
  if w.eid ~= eid then return err('waitpoint_not_found', wpid) end
  if idem ~= '' then
    local first = redis.call('HGET', wk, 'i:' .. idem)
    if first then
      local effect = string.match(redis.call('HGET', wk, 'm' .. first) or '', '^%d+|([%a_]+)|') or 'recorded'
      return ok('duplicate', tonumber(first), effect)
    end
  end
  if w.state ~= 'pending' and w.state ~= 'active' then return err('waitpoint_closed', w.state or '') end
  local x = hmget(ek, 'phase', 'outcome', 'sigs', 'susp_wps', 'susp_cond')
  if x.phase == nil then return err('not_found', eid) end
  if x.phase == 'terminal' then return err('already_terminal', x.outcome or '') end
  local sigs = tonumber(x.sigs) or 0
  if sigs >= MAX_EXECUTION_SIGNALS then
    return err('limit_reached', 'signals:at most ' .. MAX_EXECUTION_SIGNALS .. ' per execution')
  end
  local i = (tonumber(w.n) or 0) + 1
  local names = w.names or ','
  if not string.find(names, ',' .. name .. ',', 1, true) then names = names .. name .. ',' end
  -- (one write: Client::signal gives every signal a key)
  if idem ~= '' then
    redis.call('HSET', wk, 'n', i, 'names', names, 's' .. i, name, 'p' .. i, payload, 'i:' .. idem, i)
  else
    redis.call('HSET', wk, 'n', i, 'names', names, 's' .. i, name, 'p' .. i, payload)
  end
  redis.call('HSET', ek, 'sigs', sigs + 1)
  local effect = 'buffered'
  if w.state == 'active' and x.phase == 'suspended' then
    effect = 'recorded'
    local cond = parse_condition(x.susp_cond)
    local wpids = split_ids(x.susp_wps)
    if cond and condition_met(cond, tag, wpids) then
      resume(ek, tag, eid, now)
      effect = 'resumed'
    end
  end
  redis.call('HSET', wk, 'm' .. i, now .. '|' .. effect .. '|' .. idem)
  return ok('accepted', i, effect)
end

---------------------------------------------------------------------------
-- ff_get_waitpoint  KEYS: waitpoint  ARGV: wpid -> {1, now, field, value, ...}
local function ff_get_waitpoint(keys, args)
  local wk = keys[1]
  local tag = tag_of(wk or '')
  if tag == nil or not hex32_ok(args[1]) or wk ~= wp_key(tag, args[1]) then
    return err('invalid_argument', 'waitpoint:KEYS[1] must be the waitpoint of ARGV[1]')
  end
  return hash_reply(wk, now_ms()) or err('waitpoint_not_found', args[1])
end

---------------------------------------------------------------------------
-- ff_rotate_secret: make <kid> the key new tokens use, on one partition (the
-- client calls every partition). The previous key is accepted for grace_ms
-- more; keys past that are dropped. Repeating the call changes nothing.
-- KEYS: secret  ARGV: kid, secret (hex), grace_ms -> {1, 'rotated'|'current'}
local function ff_rotate_secret(keys, args)
  local sk = keys[1]
  local tag = tag_of(sk or '')
  if tag == nil or sk ~= secret_key(tag) then
    return err('invalid_argument', 'secret:KEYS[1] must be the keyring of a partition')
  end
  local kid, secret = args[1], hex_to_bytes(args[2])
  if type(kid) ~= 'string' or #kid > 32 or not string.find(kid, '^[%w_%-]+$') then
    return err('invalid_argument', 'kid:expected 1..32 characters of [A-Za-z0-9_-]')
  end
  if secret == nil or #secret < MIN_SECRET_BYTES or #secret > MAX_SECRET_BYTES then
    return err('invalid_argument', 'secret:expected ' .. MIN_SECRET_BYTES .. '..' .. MAX_SECRET_BYTES .. ' bytes in lowercase hex')
  end
  local grace, e = int_arg(args[3], 'grace_ms', 0, MAX_DURATION_MS)
  if e then return e end
  local inner, outer = hmac_states(secret)
  local states = words_to_hex(inner) .. words_to_hex(outer)
  local ring = hmget(sk, 'cur', 'k:' .. kid)
  if ring['k:' .. kid] then
    if ring['k:' .. kid] == states and ring.cur == kid then return ok('current') end
    return err('invalid_argument', 'kid:already used for another key')
  end
  local now = now_ms()
  -- Retired keys past their grace go.
  local all = redis.call('HGETALL', sk)
  for i = 1, #all, 2 do
    local old = string.match(all[i], '^x:(.+)$')
    if old and (num(all[i + 1]) or 0) <= now then redis.call('HDEL', sk, all[i], 'k:' .. old) end
  end
  if ring.cur then redis.call('HSET', sk, 'x:' .. ring.cur, now + grace) end
  redis.call('HSET', sk, 'cur', kid, 'k:' .. kid, states)
  return ok('rotated')
end

---------------------------------------------------------------------------
-- Scanner batches (see scanners.lua).

-- A suspension past its timeout: its behaviour applies.
local function expire_suspension(ek, tag, eid, now)
  local h = read_state(ek, 'susp_due', 'susp_tb')
  if h.phase ~= 'suspended' or h.susp_due == nil then return settle(tag, 'suspension_timeout', eid, nil) end
  local due = num(h.susp_due)
  if due == nil or not TIMEOUT_BEHAVIOURS[h.susp_tb or ''] or not name_ok(h.lane) then return 'malformed' end
  if due > now then return settle(tag, 'suspension_timeout', eid, due) end
  if h.susp_tb == 'resume' then
    resume(ek, tag, eid, now)
  else
    local outcome = ({fail = 'failed', cancel = 'cancelled', expire = 'expired'})[h.susp_tb]
    make_terminal(nil, ek, tag, eid, h, outcome, now, 'error', 'suspension timed out')
  end
  return 'acted'
end

-- The execution a pending-waitpoint member belongs to (for the filter).
local function waitpoint_owner(wpid, tag)
  if not hex32_ok(wpid) then return nil end
  local eid = redis.call('HGET', wp_key(tag, wpid), 'eid')
  if eid and eid_ok(eid, tag) then return exec_key(eid) end
  return false
end

-- A pending waitpoint no suspension took up: it expires (signals refused).
local function expire_waitpoint(_, tag, wpid, now, mv)
  local wk = wp_key(tag, wpid)
  local w = hmget(wk, 'state', 'expires')
  if w.state ~= 'pending' then
    defer_zrem(mv, batch_key(mv, tag, 'pending_waitpoints'), wpid)
    return 'repaired'
  end
  local exp = num(w.expires)
  if exp == nil then return 'malformed' end
  if exp > now then
    zadd_due(tag, 'pending_waitpoints', exp, wpid)
    return 'repaired'
  end
  redis.call('HSET', wk, 'state', 'expired')
  redis.call('HDEL', wk, 'expires')
  defer_zrem(mv, batch_key(mv, tag, 'pending_waitpoints'), wpid)
  return 'acted'
end

register('ff_create_waitpoint', ff_create_waitpoint)
register('ff_suspend', ff_suspend)
register('ff_signal', ff_signal)
register_ro('ff_get_waitpoint', ff_get_waitpoint)
register('ff_rotate_secret', ff_rotate_secret)
register('ff_expire_suspensions', batch_function('suspension_timeout', expire_suspension, true))
register('ff_expire_waitpoints', function(keys, args)
  return run_batch(keys, args, 'pending_waitpoints', expire_waitpoint, waitpoint_owner)
end)
