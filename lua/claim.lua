-- Claims: a worker takes eligible executions of one lane, each under a new lease.

local MAX_CLAIM_BATCH, MAX_CLAIM_SKIP = F.MAX_CLAIM_BATCH, F.MAX_CLAIM_SKIP
local MAX_LEASE_MS, MIN_LEASE_MS = F.MAX_LEASE_MS, F.MIN_LEASE_MS
local ROUTE_LOOKAHEAD = F.ROUTE_LOOKAHEAD
local count_text, counter, err, hex32_ok = P.count_text, P.counter, P.err, P.hex32_ok
local int_arg, name_arg, name_ok, now_ms = P.int_arg, P.name_arg, P.name_ok, P.now_ms
local num, optional_fields, register = P.num, P.optional_fields, P.register
local eid_in_partition, eligible_key, exec_key, tag_of = K.eid_in_partition, K.eligible_key, K.exec_key, K.tag_of
local paused_key = K.paused_key
local zadd_due_many = MV.zadd_due_many
local ADMISSION_HOOKS, make_terminal = EXEC.ADMISSION_HOOKS, EXEC.make_terminal
local count_moves, count_flow_move = EXEC.count_moves, EXEC.count_flow_move
local read_state = EXEC.read_state

-- ff_claim: hand out up to n eligible executions of one lane of one partition
-- (none of a paused lane: refused 'lane_paused').
-- KEYS: eligible index of the lane
-- ARGV: lane, worker, worker_instance, lease_ttl_ms, n, lease_id [, capabilities [, skip]]
-- -> {1, count, lease_exp, (eid, epoch, kind, payload) * count,
--     nadm, adm * nadm, nskipped, (eid, capabilities) * nskipped}
-- Every execution handed out holds the lease id, each under its own epoch,
-- which is its attempt number too (one attempt per claim). adm: what it draws
-- on (admission.lua; '' = none), listed (nadm = count) only when one of them
-- draws on something (nadm = 0). (Short: each reply element costs the server
-- time to send.) An execution needing a
-- capability the worker lacks is skipped (left eligible) and listed; up to
-- ROUTE_LOOKAHEAD of them are looked past. skip: start that far into the
-- index (past those an earlier call of the same claim skipped).
-- A kind read from a record is a name (checked once per claim call and kind).
local function kind_ok(kinds, kind)
  local good = name_ok(kind)
  if good then kinds[kind] = true end
  return good
end

-- A claim's arguments, ff_claim's ARGV from args[a] on (lane first), for
-- the lane's eligible index `ek_idx`, checked: the claim to apply, or a
-- refusal. (ff_end_many takes a claim after its reports the same way.)
local function claim_check(ek_idx, args, a)
  local tag = tag_of(ek_idx or '')
  local lane, worker, wi, ttl, n, e
  lane, e = name_arg(args[a], 'lane'); if e then return nil, e end
  if tag == nil or ek_idx ~= eligible_key(tag, lane) then
    return nil, err('invalid_argument', 'lane:KEYS must hold the eligible index of the lane')
  end
  worker, e = name_arg(args[a + 1], 'worker'); if e then return nil, e end
  wi, e = name_arg(args[a + 2], 'worker_instance'); if e then return nil, e end
  ttl, e = int_arg(args[a + 3], 'lease_ttl_ms', MIN_LEASE_MS, MAX_LEASE_MS); if e then return nil, e end
  n, e = int_arg(args[a + 4], 'count', 1, MAX_CLAIM_BATCH); if e then return nil, e end
  local lease_id = args[a + 5]
  if #args < a + 5 or #args > a + 7 then return nil, err('invalid_argument', 'count:expected one lease id') end
  if not hex32_ok(lease_id) then return nil, err('invalid_argument', 'lease_id:expected 32 hex digits') end
  local caps, skip
  caps, e = ADMISSION_HOOKS.capabilities_arg(args[a + 6] or ''); if e then return nil, e end
  skip, e = int_arg(args[a + 7] or '0', 'skip', 0, MAX_CLAIM_SKIP); if e then return nil, e end
  return {ek_idx = ek_idx, tag = tag, lane = lane, worker = worker, wi = wi, ttl = ttl, n = n,
    caps = caps, skip = skip, lease_id = lease_id}
end

-- Apply a checked claim at `now`: ff_claim's reply (a refusal, lane_paused,
-- has written nothing).
local function claim_apply(c, now)
  local needed_capabilities, capable = ADMISSION_HOOKS.needed_capabilities, ADMISSION_HOOKS.capable
  local ek_idx, tag, lane, n, caps, skip, lease_id = c.ek_idx, c.tag, c.lane, c.n, c.caps, c.skip, c.lease_id
  if redis.call('SISMEMBER', paused_key(tag), lane) == 1 then return err('lane_paused', lane) end
  local exp = now + c.ttl
  local out = {1, 0, exp}
  local claimed, admitted = 0, false
  -- Index moves are made once for the whole batch (the hot path of workers).
  local taken, leased, timed, adms, skipped, kinds = {}, {}, {}, {}, {}, {}
  -- Times as text once per batch (a number argument is formatted on every
  -- call; %.14g is exact for millisecond times). `by`: who holds the lease,
  -- one field '<worker> <instance>' (names have no spaces).
  local exp_s, by = tostring(exp), c.worker .. ' ' .. c.wi
  -- Candidates are read a page at a time: first as many as asked, then, past
  -- those that could not be handed out (skipped for capabilities, stale,
  -- expired), as many as are still wanted, up to ROUTE_LOOKAHEAD entries
  -- beyond the ask in all (each entry read costs the call).
  local from, last = skip, skip + n - 1 + ROUTE_LOOKAHEAD
  while claimed < n and from <= last do
    local to = math.min(from + n - claimed - 1, last)
    local cands = redis.call('ZRANGE', ek_idx, from, to)
    -- (an execution ended here leaves the index at once, and the next page
    -- starts that much earlier)
    local gone = 0
    for _, eid in ipairs(cands) do
      -- (the partition's prefix suffices: an index member is an id the
      -- create checked, and a damaged one reads as no record, dropped below)
      local ek = eid_in_partition(eid, tag) and exec_key(eid)
      -- (positional: this runs once per claimed execution)
      local v = ek and redis.call('HMGET', ek, 'phase', 'elig', 'lane', 'epoch', 'att_timeout', 'kind', 'payload', 'opt')
      local adm, deadline_s, needs, epoch, att_timeout, deadline, flow
      if v then
        local o = optional_fields(ek, v[8], 'adm', 'deadline', 'flow')
        adm, deadline_s, flow = o[1], o[2], o[3] or nil
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
        gone = gone + 1
      else
        -- Each claim starts one attempt under one new lease: the epoch counts
        -- both (the attempt number is the epoch).
        claimed = claimed + 1
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
        if flow then count_flow_move(tag, flow, 'eligible', 'active', now) end
        local k = #out
        out[k + 1] = eid; out[k + 2] = epoch; out[k + 3] = v[6]; out[k + 4] = v[7] or ''
        adms[#adms + 1] = adm or ''
        admitted = admitted or adm ~= false
      end
    end
    if #cands <= to - from then break end
    from = to + 1 - gone
  end
  if admitted then
    out[#out + 1] = #adms
    for _, a in ipairs(adms) do out[#out + 1] = a end
  else
    out[#out + 1] = 0
  end
  out[#out + 1] = #skipped / 2
  for _, s in ipairs(skipped) do out[#out + 1] = s end
  if claimed > 0 then count_moves(tag, lane, 'eligible', 'active', claimed) end
  if #taken > 0 then redis.call('ZREM', ek_idx, unpack(taken)) end
  zadd_due_many(tag, 'lease_expiry', leased)
  zadd_due_many(tag, 'attempt_timeout', timed)
  out[2] = claimed
  return out
end

-- ff_claim: see above.
local function ff_claim(keys, args)
  local c, e = claim_check(keys[1], args, 1)
  if e then return e end
  return claim_apply(c, now_ms())
end

register('ff_claim', ff_claim)

--- @export claim_check, claim_apply
