-- The flow calls (create, edges, cancel, read, drain) and what retention asks
-- of flows. The resolution rules are flows.lua's.

local MAX_CLAIM_BATCH, MAX_EDGES_PER_CHILD = F.MAX_CLAIM_BATCH, F.MAX_EDGES_PER_CHILD
local MAX_DATA_PARENTS, MAX_QUORUM = F.MAX_DATA_PARENTS, F.MAX_QUORUM
local MAX_FLOW_PAGE, MAX_FLOW_PAGE_EDGES = F.MAX_FLOW_PAGE, F.MAX_FLOW_PAGE_EDGES
local MAX_FLOW_MEMBERS, MAX_REASON_BYTES = F.MAX_FLOW_MEMBERS, F.MAX_REASON_BYTES
local counter, err, hash_reply, hex32_ok = P.counter, P.err, P.hash_reply, P.hex32_ok
local int_arg, name_arg, now_ms, ok = P.int_arg, P.name_arg, P.now_ms, P.ok
local register, register_ro = P.register, P.register_ro
local deps_key, eid_ok, exec_key, flow_key = K.deps_key, K.eid_ok, K.exec_key, K.flow_key
local flow_members_key, idx_key, out_key = K.flow_members_key, K.idx_key, K.out_key
local passed_key, tag_of = K.passed_key, K.tag_of
local FLOW_HOOKS, index_target, leave_live = EXEC.FLOW_HOOKS, EXEC.index_target, EXEC.leave_live
local exec_target = EXEC.exec_target
local make_waiting, counted, count_joined = EXEC.make_waiting, EXEC.counted, EXEC.count_joined
local read_state, state_of = EXEC.read_state, EXEC.state_of
local W, queue_work, resolve_edge, settle = FLOW.W, FLOW.queue_work, FLOW.resolve_edge, FLOW.settle
local enter_flow, join_ok = FLOW.enter_flow, FLOW.join_ok

-- Validate the (flow id, KEYS[1]) pair every flow function receives.
local function flow_target(keys, flow)
  local fk = keys[1]
  local tag = tag_of(fk or '')
  if tag == nil or not hex32_ok(flow) or fk ~= flow_key(tag, flow) then
    return nil, nil, err('invalid_argument', 'flow:KEYS[1] must be ff:flow:{fp:N}:<flow id> and match ARGV[1]')
  end
  return fk, tag
end

-- ff_create_flow  KEYS: flow  ARGV: flow, ns -> {1, 'created'|'exists'}
local function ff_create_flow(keys, args)
  local flow = args[1]
  local fk, tag, bad = flow_target(keys, flow)
  if bad then return bad end
  local ns, e = name_arg(args[2], 'namespace'); if e then return e end
  local have = redis.call('HGET', fk, 'ns')
  if have then
    if have ~= ns then return err('invalid_argument', 'namespace:the flow exists in namespace ' .. have) end
    return ok('exists')
  end
  redis.call('HSET', fk, 'ns', ns, 'created', now_ms(), 'n', 0, 'done', 0)
  return ok('created')
end

-- Is `target` reachable from `from` along edges? (nil, refusal when the
-- search would pass MAX_FLOW_MEMBERS members.)
local function reaches(from, target)
  local seen, stack, count = {[from] = true}, {from}, 0
  while #stack > 0 do
    local node = table.remove(stack)
    for _, child in ipairs(redis.call('ZRANGE', out_key(node), 0, -1)) do
      if child == target then return true end
      if not seen[child] then
        count = count + 1
        if count > MAX_FLOW_MEMBERS then return nil, err('too_large', 'flow:cycle check passed ' .. MAX_FLOW_MEMBERS .. ' members') end
        seen[child] = true
        stack[#stack + 1] = child
      end
    end
  end
  return false
end

-- Write the edge parent -> child, pending (the caller checked it may).
local function record_edge(dk, parent, child, pass_data)
  redis.call('ZADD', out_key(parent), '0', child)
  redis.call('HSET', dk, parent, pass_data and 'P' or 'p')
  redis.call('HINCRBY', dk, '#n', '1')
  if pass_data then redis.call('HINCRBY', dk, '#d', '1') end
end

-- Hold back an execution that has not started (runnable: eligible or
-- delayed, state `c` as read_state read it) until its parents decide its
-- join; a delay is honoured once they release it.
local function hold_back(ck, tag, eid, c, now)
  leave_live(ck, tag, eid, c)
  if c.elig == 'delayed' then
    redis.call('HSET', ck, 'ready_at', redis.call('HGET', ck, 'due'))
  end
  make_waiting(ck, tag, eid, c, now)
end

-- ff_add_edge  KEYS: flow  ARGV: flow, parent, child, pass_data (0|1)
-- The parent must be a member; the child may not exist yet (it waits from its
-- creation) or must not have started.
-- -> {1, 'added'|'duplicate', decision: 'waiting'|'ready'|'impossible'|'recorded'}
-- An existing edge is answered 'duplicate' whatever happened since (the
-- child started, the flow was cancelled): the call sent again after its
-- reply was lost is not refused for what the first send allowed.
local function ff_add_edge(keys, args)
  local flow, parent, child, data = args[1], args[2], args[3], args[4]
  local fk, tag, bad = flow_target(keys, flow)
  if bad then return bad end
  if not eid_ok(parent, tag) then return err('invalid_argument', 'parent:expected an execution id of the flow\'s partition') end
  if not eid_ok(child, tag) then return err('invalid_argument', 'child:expected an execution id of the flow\'s partition') end
  if parent == child then return err('cycle', 'an execution cannot depend on itself') end
  if data ~= '0' and data ~= '1' then return err('invalid_argument', 'pass_data:expected 0 or 1') end
  local f = redis.call('HMGET', fk, 'n', 'cancel')
  if not f[1] then return err('not_found', 'flow ' .. flow) end
  local p = redis.call('HMGET', exec_key(parent), 'flow', 'phase', 'outcome')
  if p[1] ~= flow then return err('not_found', 'parent ' .. parent .. ' in flow ' .. flow) end
  local dk = deps_key(child)
  local d = redis.call('HMGET', dk, parent, '#n', '#d', '#dp')
  if d[1] then return ok('duplicate', 'unchanged') end
  if f[2] then return err('flow_cancelled', flow) end
  local ck = exec_key(child)
  local c = read_state(ck, 'epoch')
  if c.phase ~= nil then
    if c.flow ~= flow then return err('invalid_argument', 'child:a member of another flow or of none') end
    local fresh = c.phase == 'runnable' and (c.elig == 'eligible' or c.elig == 'delayed' or c.elig == 'waiting_children')
    if not fresh or (counter(c.epoch) or 1) > 0 then return err('invalid_state', 'child:already started or decided') end
  end
  if (tonumber(d[2]) or 0) >= MAX_EDGES_PER_CHILD then
    return err('too_large', 'child:at most ' .. MAX_EDGES_PER_CHILD .. ' parents')
  end
  if data == '1' and (tonumber(d[3]) or 0) >= MAX_DATA_PARENTS then
    return err('too_large', 'child:at most ' .. MAX_DATA_PARENTS .. ' parents passing data')
  end
  local cyc, e = reaches(child, parent)
  if e then return e end
  if cyc then return err('cycle', parent .. ' depends on ' .. child) end

  local now = now_ms()
  record_edge(dk, parent, child, data == '1')
  if data == '1' then
    if d[4] then
      -- A second data-passing parent: the first one's result, so far only
      -- the payload (or '#data'), is kept by its id from now on.
      local first
      if c.phase ~= nil then
        first = redis.call('HGET', ck, 'payload')
      else
        first = redis.call('HGET', dk, '#data')
      end
      redis.call('HSET', passed_key(child), d[4], first or '')
      redis.call('HDEL', dk, '#dp')
    end
  end
  if c.phase ~= nil and c.elig ~= 'waiting_children' then
    -- Not started yet: held back until the join decides again.
    hold_back(ck, tag, child, c, now)
  end
  local decision = 'waiting'
  if p[2] == 'terminal' then
    decision = resolve_edge(tag, parent, child, p[3], now)
  elseif c.phase == nil then
    decision = 'recorded'
  end
  return ok('added', decision)
end

-- ff_add_execution_to_flow  KEYS: flow
-- ARGV: flow, eid, join, join_cancel (0|1), then parent, pass_data (0|1) pairs
-- Make an existing execution of the flow's partition, in no flow and not
-- ended, a member, waiting on the parents given (members of the flow) as a
-- member created after its edges does; with parents it must not have
-- started (runnable: eligible or delayed, never claimed).
-- -> {1, 'added'|'already', phase, elig, outcome}
-- A member of this flow already, with the same join and at least the edges
-- asked for, is answered 'already' whatever happened since (it ended, the
-- flow was cancelled): the call sent again after its reply was lost.
local function ff_add_execution_to_flow(keys, args)
  local flow, eid, join, jc = args[1], args[2], args[3], args[4]
  local fk, tag, bad = flow_target(keys, flow)
  if bad then return bad end
  if not eid_ok(eid, tag) then return err('invalid_argument', 'execution:expected an execution id of the flow\'s partition') end
  if not join_ok(join) then return err('invalid_argument', 'join:expected all, any or q:<1..' .. MAX_QUORUM .. '>') end
  if jc ~= '0' and jc ~= '1' then return err('invalid_argument', 'join_cancel:expected 0 or 1') end
  if #args % 2 ~= 0 then return err('invalid_argument', 'parents:expected parent and pass_data pairs') end
  if (#args - 4) / 2 > MAX_EDGES_PER_CHILD then
    return err('too_large', 'execution:at most ' .. MAX_EDGES_PER_CHILD .. ' parents')
  end
  local parents, seen, ndata = {}, {}, 0
  for j = 5, #args, 2 do
    local p, d = args[j], args[j + 1]
    if not eid_ok(p, tag) then return err('invalid_argument', 'parent:expected an execution id of the flow\'s partition') end
    if p == eid then return err('cycle', 'an execution cannot depend on itself') end
    if seen[p] then return err('invalid_argument', 'parent:' .. p .. ' given twice') end
    if d ~= '0' and d ~= '1' then return err('invalid_argument', 'pass_data:expected 0 or 1') end
    seen[p] = true
    if d == '1' then ndata = ndata + 1 end
    parents[#parents + 1] = {id = p, data = d == '1'}
  end
  if ndata > MAX_DATA_PARENTS then
    return err('too_large', 'execution:at most ' .. MAX_DATA_PARENTS .. ' parents passing data')
  end
  local f = redis.call('HMGET', fk, 'n', 'cancel', 'done')
  if not f[1] then return err('not_found', 'flow ' .. flow) end
  local ek = exec_key(eid)
  local h = read_state(ek, 'epoch', 'outcome', 'join', 'jc', 'opt')
  if h.phase == nil then return err('not_found', 'execution ' .. eid) end
  local dk = deps_key(eid)
  if h.flow == flow then
    -- (checked before the flow's and the execution's states: see above)
    local same = h.join == join and h.jc == jc
    for _, p in ipairs(parents) do
      same = same and redis.call('HEXISTS', dk, p.id) == 1
    end
    if not same then return err('invalid_state', 'execution:already a member of flow ' .. flow .. ' (other join or edges)') end
    return ok('already', state_of(ek))
  end
  if h.flow then return err('invalid_state', 'execution:a member of flow ' .. h.flow) end
  if f[2] then return err('flow_cancelled', flow) end
  -- (a flow whose members all ended has decided its outcome)
  local n, done = tonumber(f[1]) or 0, tonumber(f[3]) or 0
  if n > 0 and done >= n then return err('flow_ended', flow) end
  if h.phase == 'terminal' then return err('already_terminal', h.outcome or '') end
  if (tonumber(f[1]) or 0) >= MAX_FLOW_MEMBERS then
    return err('too_large', 'flow:at most ' .. MAX_FLOW_MEMBERS .. ' members')
  end
  -- Edges recorded for its id before it was created outside the flow (or a
  -- damaged record): not a state to join from. (With no children of its own,
  -- the new edges cannot close a cycle.)
  if redis.call('EXISTS', dk, out_key(eid)) > 0 then
    return err('invalid_state', 'execution:has dependency edges recorded outside a flow')
  end
  if #parents > 0 then
    local fresh = h.phase == 'runnable' and (h.elig == 'eligible' or h.elig == 'delayed')
    if not fresh or (counter(h.epoch) or 1) > 0 then
      return err('invalid_state', 'execution:already started or blocked; it can wait on parents only before its first claim')
    end
  end
  local ended = {}
  for _, p in ipairs(parents) do
    local ph = redis.call('HMGET', exec_key(p.id), 'flow', 'phase', 'outcome')
    if ph[1] ~= flow then return err('not_found', 'parent ' .. p.id .. ' in flow ' .. flow) end
    if ph[2] == 'terminal' then ended[#ended + 1] = {p.id, ph[3]} end
  end

  local now = now_ms()
  for _, p in ipairs(parents) do
    record_edge(dk, p.id, eid, p.data)
  end
  if #parents > 0 then hold_back(ek, tag, eid, h, now) end
  -- The member enters the flow here in its current state (waiting_children
  -- when held back above); resolving the ended parents' edges may then
  -- release or skip it (flows.lua, decide_child).
  enter_flow(ek, tag, eid, flow, fk, join, jc)
  count_joined(tag, flow, #parents > 0 and 'waiting_children' or counted(h.phase, h.elig, nil), now)
  -- Its record has a flow field now: the hot paths read it only when `opt`
  -- says so (create.lua, shape_opt). (A record without `opt` is read whole.)
  if h.opt and not string.find(h.opt, 'f', 1, true) then
    redis.call('HSET', ek, 'opt', h.opt .. 'f')
  end
  for _, e in ipairs(ended) do
    resolve_edge(tag, e[1], eid, e[2], now)
  end
  return ok('added', state_of(ek))
end

-- ff_flow_members  KEYS: flow  ARGV: flow, offset, limit
-- A page of the flow's members in id order from `offset`: up to `limit`, or
-- fewer once the edges read pass MAX_FLOW_PAGE_EDGES (a member's edges come
-- whole). -> {1, members in all, next offset (0: no more), then per member:
-- eid, phase, elig, outcome, lane, kind, join, edge count, and per incoming
-- edge in parent id order: parent, state (flows.lua: p s i, upper case when
-- it passes data)}
local function ff_flow_members(keys, args)
  local flow = args[1]
  local fk, tag, bad = flow_target(keys, flow)
  if bad then return bad end
  local offset, e = int_arg(args[2], 'offset', 0, MAX_FLOW_MEMBERS); if e then return e end
  local limit
  limit, e = int_arg(args[3], 'limit', 1, MAX_FLOW_PAGE); if e then return e end
  if redis.call('EXISTS', fk) == 0 then return err('not_found', 'flow ' .. flow) end
  local mk = flow_members_key(tag, flow)
  local total = redis.call('ZCARD', mk)
  local out, edges, taken = {1, total, 0}, 0, 0
  for _, m in ipairs(redis.call('ZRANGE', mk, offset, offset + limit - 1)) do
    if edges >= MAX_FLOW_PAGE_EDGES then break end
    taken = taken + 1
    local h = redis.call('HMGET', exec_key(m), 'phase', 'elig', 'outcome', 'lane', 'kind', 'join')
    -- (a member whose record is gone is left to the projector to drop)
    if h[1] then
      local deps = redis.call('HGETALL', deps_key(m))
      local at = #out
      out[at + 1], out[at + 2], out[at + 3], out[at + 4] = m, h[1], h[2] or '', h[3] or ''
      out[at + 5], out[at + 6], out[at + 7], out[at + 8] = h[4] or '', h[5] or '', h[6] or '', 0
      -- (in parent id order: a hash's own order is the store's)
      local ps, st = {}, {}
      for j = 1, #deps, 2 do
        if string.sub(deps[j], 1, 1) ~= '#' then
          ps[#ps + 1] = deps[j]
          st[deps[j]] = deps[j + 1]
        end
      end
      table.sort(ps)
      for _, p in ipairs(ps) do
        out[#out + 1] = p
        out[#out + 1] = st[p]
      end
      out[at + 8] = #ps
      edges = edges + #ps
    end
  end
  if offset + taken < total then out[3] = offset + taken end
  return out
end

-- ff_cancel_flow  KEYS: flow  ARGV: flow, reason -> {1, 'cancelling'|'already'}
-- Durable: the flow is marked at once (no new members or edges), its members
-- are cancelled in bounded steps (here, then by the engine).
local function ff_cancel_flow(keys, args)
  local flow, reason = args[1], args[2] or ''
  local fk, tag, bad = flow_target(keys, flow)
  if bad then return bad end
  if #reason > MAX_REASON_BYTES then return err('invalid_argument', 'reason:too long') end
  local f = redis.call('HMGET', fk, 'n', 'cancel')
  if not f[1] then return err('not_found', 'flow ' .. flow) end
  if f[2] then return ok('already') end
  if reason == '' then reason = 'flow cancelled' end
  redis.call('HSET', fk, 'cancel', reason)
  queue_work(tag, 'f:' .. flow)
  return ok('cancelling')
end

-- ff_flow_get  KEYS: flow  ARGV: flow -> {1, field, value, ...}
local function ff_flow_get(keys, args)
  local fk, _, bad = flow_target(keys, args[1])
  if bad then return bad end
  return hash_reply(fk) or err('not_found', 'flow ' .. args[1])
end

-- ff_parent_results  KEYS: exec  ARGV: eid -> {1, parent, result, ...}
-- The results the member's data-passing parents passed it before its join
-- released it, by parent (flows.lua, resolve_edge); none outside a flow.
local function ff_parent_results(keys, args)
  local ek, _, e = exec_target(keys, args[1])
  if e then return e end
  local eid = args[1]
  local d = redis.call('HMGET', deps_key(eid), '#d', '#dp', '#data')
  if (tonumber(d[1]) or 0) > 1 then
    local out = redis.call('HGETALL', passed_key(eid))
    table.insert(out, 1, 1)
    return out
  end
  if d[2] then return {1, d[2], redis.call('HGET', ek, 'payload') or d[3] or ''} end
  return {1}
end

-- A flow_work member: 'd:'/'x:' and an execution id, or 'f:' and a flow id.
local function work_item_ok(item, tag)
  local kind, id = string.sub(item, 1, 2), string.sub(item, 3)
  if kind == 'f:' then return hex32_ok(id) end
  return (kind == 'd:' or kind == 'x:') and eid_ok(id, tag)
end

-- ff_flow_drain  KEYS: flow_work index  ARGV: budget
-- The completion listener's call: work the partition's queue, oldest first,
-- whatever its due times. -> {1, units of work done, items still queued}
local function ff_flow_drain(keys, args)
  local idx, tag, e = index_target(keys, 'flow_work')
  if e then return e end
  local n
  n, e = int_arg(args[1], 'budget', 1, MAX_CLAIM_BATCH); if e then return e end
  W.budget = n
  for _, item in ipairs(redis.call('ZRANGE', idx, 0, n - 1)) do
    if work_item_ok(item, tag) then
      queue_work(tag, item)
    else
      redis.call('ZREM', idx, item)
    end
  end
  settle()
  return ok(n - W.budget, redis.call('ZCARD', idx))
end

---------------------------------------------------------------------------
-- Retention: a purged member leaves its flow (the last one takes the flow).
FLOW_HOOKS.member_purged = function(tag, eid, flow, outcome)
  local fk = flow_key(tag, flow)
  redis.call('ZREM', flow_members_key(tag, flow), eid)
  redis.call('DEL', deps_key(eid), out_key(eid), passed_key(eid))
  local left = redis.call('HINCRBY', fk, 'n', '-1')
  redis.call('HINCRBY', fk, 'done', '-1')
  if outcome then redis.call('HINCRBY', fk, outcome, '-1') end
  if left <= 0 then
    redis.call('DEL', fk, flow_members_key(tag, flow))
    redis.call('ZREM', idx_key(tag, 'flows'), flow)
    redis.call('ZREM', idx_key(tag, 'flow_work'), 'f:' .. flow)
  end
end

-- Before a member is purged its outgoing edges must be resolved: 'blocked'
-- while that work is still queued.
FLOW_HOOKS.purge_blocked = function(tag, eid)
  local item = 'd:' .. eid
  if not redis.call('ZSCORE', idx_key(tag, 'flow_work'), item) then return false end
  queue_work(tag, item)
  settle()
  return redis.call('ZSCORE', idx_key(tag, 'flow_work'), item) ~= false
end

register('ff_create_flow', ff_create_flow)
register('ff_add_edge', ff_add_edge)
register('ff_add_execution_to_flow', ff_add_execution_to_flow)
register_ro('ff_flow_members', ff_flow_members)
register('ff_cancel_flow', ff_cancel_flow)
register_ro('ff_flow_get', ff_flow_get)
register_ro('ff_parent_results', ff_parent_results)
register('ff_flow_drain', ff_flow_drain)

--- @export work_item_ok
