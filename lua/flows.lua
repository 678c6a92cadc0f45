-- Flows: DAGs of executions whose edges make a child wait for its parents.
--
-- A flow's members live on the flow's partition (their ids carry its hash
-- tag), so every edge resolution is single-slot and atomic: the call that ends
-- a member resolves its outgoing edges itself when they are few
-- (FLOW_INLINE_BUDGET); the rest is queued in the partition's `flow_work`
-- index, drained by the engine's completion listener at once and by the flow
-- reconciler when an announcement was lost.
--
-- Keys (core/src/keys.rs):
--   ff:flow:{fp:N}:<flow>          hash: ns, created, n (members), done, one
--                                  count per outcome, cancel (reason, once asked)
--   ff:flow:{fp:N}:<flow>:members  sorted set, score 0 (read in id order)
--   ff:deps:<child>                hash: parent -> p (pending) | P (pending, passes
--                                  its result) | s (satisfied) | i (impossible);
--                                  '#n', '#s', '#i' counts; '#data' a passed result
--                                  kept until the child is created
--   ff:out:<parent>                sorted set, score 0: its children
-- Member fields: flow, join ('all' | 'any' | 'q:<n>'), jc ('1': cancel the
-- remaining parents once the join is decided), ready_at (a create delay to
-- honour once released), dcur (resolution cursor over ff:out).
-- flow_work members: 'd:<eid>' resolve an ended member's outgoing edges,
-- 'x:<eid>' cancel a decided child's remaining parents, 'f:<flow>' cancel a
-- flow's members.

-- Bounds (the same numbers as core/src/contract/limits.rs).
local MAX_EDGES_PER_CHILD = 10000
local MAX_QUORUM = 10000
-- Flow work a call does itself before leaving the rest to the engine.
local FLOW_INLINE_BUDGET = 64
-- A flow whose members changed is recounted by the projector after this.
local FLOW_PROJECT_DELAY_MS = 5000
-- The projector recounts flows up to this size in one call.
local FLOW_PROJECT_MAX = 1000

local COMPLETION_CHANNEL = 'ff:done'

-- The join rule (core/src/flow/join.rs): 'ready', 'impossible' or 'waiting'.
local function join_decide(join, n, s, i)
  if n == 0 then return 'ready' end
  if join == 'any' then
    if s >= 1 then return 'ready' end
    if i == n then return 'impossible' end
  elseif join == 'all' then
    if s == n then return 'ready' end
    if i > 0 then return 'impossible' end
  else
    local k = tonumber(string.match(join or '', '^q:(%d+)$')) or 1
    if s >= k then return 'ready' end
    if n - i < k then return 'impossible' end
  end
  return 'waiting'
end

local function join_ok(j)
  if j == 'all' or j == 'any' then return true end
  local q = string.match(j or '', '^q:([1-9]%d*)$')
  return q ~= nil and tonumber(q) <= MAX_QUORUM
end

---------------------------------------------------------------------------
-- Work left by the current call: settled by after_write (prelude.lua).

local queue = {}      -- {tag, item} in order
local queued = {}     -- tag .. item -> true
local ended = {}      -- {tag, eid, outcome} of members ended by this call
local budget = 0

local function queue_work(tag, item)
  local k = tag .. item
  if not queued[k] then
    queued[k] = true
    queue[#queue + 1] = {tag, item}
  end
end

before_write = function()
  queue, queued, ended, budget = {}, {}, {}, FLOW_INLINE_BUDGET
end

flow_member_ended = function(tag, eid, flow, outcome, now)
  local fk = flow_key(tag, flow)
  redis.call('HINCRBY', fk, 'done', 1)
  redis.call('HINCRBY', fk, outcome, 1)
  redis.call('ZADD', idx_key(tag, 'flows'), 'NX', now + FLOW_PROJECT_DELAY_MS, flow)
  if redis.call('EXISTS', out_key(eid)) == 1 then queue_work(tag, 'd:' .. eid) end
  ended[#ended + 1] = {tag, eid, outcome}
end

-- Cancel one member for its flow (a flow cancel, or a decided join).
local function cancel_member(tag, eid, reason, now)
  local ek = exec_key(eid)
  local h = read_state(ek)
  if h.phase == nil or h.phase == 'terminal' then return end
  if h.phase == 'active' then
    make_terminal(nil, ek, tag, eid, h, 'cancelled', now, 'error', reason, 'att_state', 'cancelled')
  else
    make_terminal(nil, ek, tag, eid, h, 'cancelled', now, 'error', reason)
  end
end

-- Apply the join of `child` once its edge counts changed.
local function decide_child(tag, child, now)
  local ck = exec_key(child)
  local h = read_state(ck, 'join', 'jc', 'ready_at')
  if h.phase == nil then return 'recorded' end
  if h.phase ~= 'runnable' or h.elig ~= 'waiting_children' then return 'late' end
  local c = redis.call('HMGET', deps_key(child), '#n', '#s', '#i')
  local n, s, i = tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0
  local d = join_decide(h.join, n, s, i)
  if d == 'ready' then
    redis.call('ZREM', idx_key(tag, 'waiting_children'), child)
    local ready_at = num(h.ready_at)
    if ready_at and ready_at > now then
      make_delayed(nil, ck, tag, child, ready_at)
    else
      make_eligible(ck, tag, child, h.lane, num(h.pri) or 0, now)
    end
    if h.ready_at then redis.call('HDEL', ck, 'ready_at') end
  elseif d == 'impossible' then
    make_terminal(nil, ck, tag, child, h, 'skipped', now, 'error', 'a dependency cannot be satisfied')
  end
  if d ~= 'waiting' and h.jc == '1' and s + i < n then queue_work(tag, 'x:' .. child) end
  return d
end

-- Resolve the edge parent -> child with the parent's outcome (once: a resolved
-- edge is left as it is).
local function resolve_edge(tag, parent, child, outcome, now)
  local dk = deps_key(child)
  local st = redis.call('HGET', dk, parent)
  if st ~= 'p' and st ~= 'P' then return 'already' end
  local sat = outcome == 'success'
  redis.call('HSET', dk, parent, sat and 's' or 'i')
  redis.call('HINCRBY', dk, sat and '#s' or '#i', 1)
  if sat and st == 'P' then
    local result = redis.call('HGET', exec_key(parent), 'result') or ''
    if redis.call('EXISTS', exec_key(child)) == 1 then
      local ph = redis.call('HMGET', exec_key(child), 'phase', 'elig')
      if ph[1] == 'runnable' and ph[2] == 'waiting_children' then
        redis.call('HSET', exec_key(child), 'payload', result)
      end
    else
      redis.call('HSET', dk, '#data', result)
    end
  end
  return decide_child(tag, child, now)
end

-- Work on one queued item within the call's budget; true once it is finished.
local function work_item(tag, item, now)
  local kind, id = string.sub(item, 1, 1), string.sub(item, 3)
  if kind == 'd' then
    local ek = exec_key(id)
    local h = redis.call('HMGET', ek, 'phase', 'outcome', 'dcur')
    -- (a purged parent left nothing to resolve: purge settles its edges first)
    if h[1] ~= 'terminal' then return true end
    local cursor = tonumber(h[3]) or 0
    while budget > 0 do
      local children = redis.call('ZRANGE', out_key(id), cursor, cursor + budget - 1)
      for _, child in ipairs(children) do
        resolve_edge(tag, id, child, h[2], now)
      end
      budget = budget - #children
      cursor = cursor + #children
      if #children == 0 or budget > 0 then
        if h[3] then redis.call('HDEL', ek, 'dcur') end
        return true
      end
    end
    redis.call('HSET', ek, 'dcur', cursor)
    return false
  elseif kind == 'x' then
    local deps = redis.call('HGETALL', deps_key(id))
    for j = 1, #deps, 2 do
      local parent, st = deps[j], deps[j + 1]
      if st == 'p' or st == 'P' then
        if budget == 0 then return false end
        budget = budget - 1
        cancel_member(tag, parent, 'another parent decided the join of ' .. id, now)
      end
    end
    return true
  else
    local fk = flow_key(tag, id)
    local f = redis.call('HMGET', fk, 'cancel', 'ccur')
    if not f[1] then return true end
    local cursor = tonumber(f[2]) or 0
    while budget > 0 do
      local members = redis.call('ZRANGE', flow_members_key(tag, id), cursor, cursor + budget - 1)
      for _, m in ipairs(members) do
        cancel_member(tag, m, f[1], now)
      end
      budget = budget - #members
      cursor = cursor + #members
      if #members == 0 or budget > 0 then
        if f[2] then redis.call('HDEL', fk, 'ccur') end
        return true
      end
    end
    redis.call('HSET', fk, 'ccur', cursor)
    return false
  end
end

-- Do the queued work within the budget, queue the rest in flow_work, and
-- announce every member this call ended: '<eid> <outcome> <pending>', pending
-- 1 when its partition has queued work (core/src/flow/dispatch.rs).
local function settle()
  if #queue == 0 and #ended == 0 then return end
  local now = now_ms()
  local pending = {}
  local i = 1
  while i <= #queue do
    local tag, item = queue[i][1], queue[i][2]
    if budget > 0 and work_item(tag, item, now) then
      redis.call('ZREM', idx_key(tag, 'flow_work'), item)
    else
      zadd_due(tag, 'flow_work', now + FLOW_RECONCILE_GRACE_MS, item)
      pending[tag] = true
    end
    i = i + 1
  end
  for _, e in ipairs(ended) do
    redis.call('PUBLISH', COMPLETION_CHANNEL, e[2] .. ' ' .. e[3] .. ' ' .. (pending[e[1]] and '1' or '0'))
  end
  queue, queued, ended = {}, {}, {}
end

after_write = settle

---------------------------------------------------------------------------
-- Membership, from ff_create.

-- Check ff_create's flow arguments: nil when not a flow member.
flow_member_arg = function(tag, flow, join, jc)
  if flow == nil or flow == '' then
    if (join ~= nil and join ~= '' and join ~= 'all') or (jc ~= nil and jc ~= '' and jc ~= '0') then
      return nil, err('invalid_argument', 'join:only flow members have a join')
    end
    return nil
  end
  if not hex32_ok(flow) then return nil, err('invalid_argument', 'flow:expected 32 hex digits') end
  if not join_ok(join) then return nil, err('invalid_argument', 'join:expected all, any or q:<1..' .. MAX_QUORUM .. '>') end
  if jc ~= '0' and jc ~= '1' then return nil, err('invalid_argument', 'join_cancel:expected 0 or 1') end
  local fk = flow_key(tag, flow)
  local f = redis.call('HMGET', fk, 'n', 'cancel')
  if not f[1] then return nil, err('not_found', 'flow ' .. flow) end
  if f[2] then return nil, err('flow_cancelled', flow) end
  -- (its size limit is checked per new member: ff_create's item_check)
  return {flow = flow, join = join, jc = jc, fk = fk, n = tonumber(f[1]) or 0}
end

-- Place a new member: waiting on the edges declared before it existed, or
-- released at once when they already decide its join.
flow_member_created = function(ek, tag, eid, m, now, delay, lane, pri)
  redis.call('HSET', ek, 'flow', m.flow, 'join', m.join, 'jc', m.jc)
  redis.call('ZADD', flow_members_key(tag, m.flow), 0, eid)
  redis.call('HINCRBY', m.fk, 'n', 1)
  local dk = deps_key(eid)
  local c = redis.call('HMGET', dk, '#n', '#data')
  if c[2] then
    redis.call('HSET', ek, 'payload', c[2])
    redis.call('HDEL', dk, '#data')
  end
  if tonumber(c[1] or '0') == 0 then
    -- No edges yet: it runs as any execution (edges added before its first
    -- claim still hold it back).
    if delay > 0 then
      make_delayed(nil, ek, tag, eid, now + delay)
    else
      make_eligible(ek, tag, eid, lane, pri, now)
    end
    return
  end
  if delay > 0 then redis.call('HSET', ek, 'ready_at', now + delay) end
  make_waiting(ek, tag, eid, now)
  -- (its parents may have ended already)
  decide_child(tag, eid, now)
end

---------------------------------------------------------------------------
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

-- ff_add_edge  KEYS: flow  ARGV: flow, parent, child, pass_data (0|1)
-- The parent must be a member; the child may not exist yet (it waits from its
-- creation) or must not have started.
-- -> {1, 'added'|'duplicate', decision: 'waiting'|'ready'|'impossible'|'recorded'}
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
  if f[2] then return err('flow_cancelled', flow) end
  local p = redis.call('HMGET', exec_key(parent), 'flow', 'phase', 'outcome')
  if p[1] ~= flow then return err('not_found', 'parent ' .. parent .. ' in flow ' .. flow) end
  local ck = exec_key(child)
  local c = read_state(ck, 'epoch')
  if c.phase ~= nil then
    if c.flow ~= flow then return err('invalid_argument', 'child:a member of another flow or of none') end
    local fresh = c.phase == 'runnable' and (c.elig == 'eligible' or c.elig == 'delayed' or c.elig == 'waiting_children')
    if not fresh or (counter(c.epoch) or 1) > 0 then return err('invalid_state', 'child:already started or decided') end
  end
  local dk = deps_key(child)
  local d = redis.call('HMGET', dk, parent, '#n')
  if d[1] then return ok('duplicate', 'unchanged') end
  if (tonumber(d[2]) or 0) >= MAX_EDGES_PER_CHILD then
    return err('too_large', 'child:at most ' .. MAX_EDGES_PER_CHILD .. ' parents')
  end
  local cyc, e = reaches(child, parent)
  if e then return e end
  if cyc then return err('cycle', parent .. ' depends on ' .. child) end

  local now = now_ms()
  redis.call('ZADD', out_key(parent), 0, child)
  redis.call('HSET', dk, parent, data == '1' and 'P' or 'p')
  redis.call('HINCRBY', dk, '#n', 1)
  if c.phase ~= nil and c.elig ~= 'waiting_children' then
    -- Not started yet: held back until the join decides again.
    leave_live(ck, tag, child, c)
    if c.elig == 'delayed' then
      redis.call('HSET', ck, 'ready_at', redis.call('HGET', ck, 'due'))
    end
    make_waiting(ck, tag, child, now)
  end
  local decision = 'waiting'
  if p[2] == 'terminal' then
    decision = resolve_edge(tag, parent, child, p[3], now)
  elseif c.phase == nil then
    decision = 'recorded'
  end
  return ok('added', decision)
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
  budget = n
  for _, item in ipairs(redis.call('ZRANGE', idx, 0, n - 1)) do
    if work_item_ok(item, tag) then
      queue_work(tag, item)
    else
      redis.call('ZREM', idx, item)
    end
  end
  settle()
  return ok(n - budget, redis.call('ZCARD', idx))
end

---------------------------------------------------------------------------
-- Retention: a purged member leaves its flow (the last one takes the flow).
flow_member_purged = function(tag, eid, flow, outcome)
  local fk = flow_key(tag, flow)
  redis.call('ZREM', flow_members_key(tag, flow), eid)
  redis.call('DEL', deps_key(eid), out_key(eid))
  local left = redis.call('HINCRBY', fk, 'n', -1)
  redis.call('HINCRBY', fk, 'done', -1)
  if outcome then redis.call('HINCRBY', fk, outcome, -1) end
  if left <= 0 then
    redis.call('DEL', fk, flow_members_key(tag, flow))
    redis.call('ZREM', idx_key(tag, 'flows'), flow)
    redis.call('ZREM', idx_key(tag, 'flow_work'), 'f:' .. flow)
  end
end

-- Before a member is purged its outgoing edges must be resolved: 'blocked'
-- while that work is still queued.
flow_purge_blocked = function(tag, eid)
  local item = 'd:' .. eid
  if not redis.call('ZSCORE', idx_key(tag, 'flow_work'), item) then return false end
  queue_work(tag, item)
  settle()
  return redis.call('ZSCORE', idx_key(tag, 'flow_work'), item) ~= false
end

---------------------------------------------------------------------------
-- The engine's flow scanners (run_batch, scanners.lua).

-- run_batch owners (the record the filter reads; nil: malformed).
local function work_owner(item, tag)
  if not work_item_ok(item, tag) then return nil end
  if string.sub(item, 1, 2) == 'f:' then return flow_key(tag, string.sub(item, 3)) end
  return exec_key(string.sub(item, 3))
end

local function flow_owner(flow, tag)
  if not hex32_ok(flow) then return nil end
  return flow_key(tag, flow)
end

-- Flow reconciler: queued flow work whose announcement nobody acted on.
local function flow_work_due(_, tag, item)
  budget = FLOW_INLINE_BUDGET * 4
  queue_work(tag, item)
  settle()
  return 'acted'
end

-- Dependency reconciler: a waiting child whose parents ended without its
-- edges being resolved (a bug or a lost write would otherwise strand it).
local function recheck_waiting(ck, tag, child, now)
  local h = redis.call('HMGET', ck, 'phase', 'elig')
  if h[1] ~= 'runnable' or h[2] ~= 'waiting_children' then
    redis.call('ZREM', idx_key(tag, 'waiting_children'), child)
    return 'repaired'
  end
  local deps = redis.call('HGETALL', deps_key(child))
  local fixed = false
  for j = 1, #deps, 2 do
    local parent, st = deps[j], deps[j + 1]
    if st == 'p' or st == 'P' then
      local p = redis.call('HMGET', exec_key(parent), 'phase', 'outcome')
      -- (a parent that no longer exists cannot succeed any more)
      if p[1] == 'terminal' or p[1] == false then
        resolve_edge(tag, parent, child, p[2] or 'expired', now)
        fixed = true
      end
    end
  end
  if redis.call('HGET', ck, 'elig') == 'waiting_children' then
    redis.call('ZADD', idx_key(tag, 'waiting_children'), now + WAITING_RECHECK_MS, child)
  end
  return fixed and 'repaired' or 'acted'
end

local OUTCOMES = {'success', 'failed', 'cancelled', 'expired', 'skipped'}

-- Flow projector: recount a changed flow from its members and repair the
-- counters the data plane keeps (they are exact unless something broke).
local function project(fk, tag, flow)
  redis.call('ZREM', idx_key(tag, 'flows'), flow)
  local f = redis.call('HMGET', fk, 'n', 'done', unpack(OUTCOMES))
  if not f[1] then return 'repaired' end
  local members = flow_members_key(tag, flow)
  if redis.call('ZCARD', members) > FLOW_PROJECT_MAX then return 'acted' end
  local count = {n = 0, done = 0}
  for _, o in ipairs(OUTCOMES) do count[o] = 0 end
  for _, m in ipairs(redis.call('ZRANGE', members, 0, -1)) do
    local h = redis.call('HMGET', exec_key(m), 'phase', 'outcome')
    if h[1] then
      count.n = count.n + 1
      if h[1] == 'terminal' and count[h[2]] then
        count.done = count.done + 1
        count[h[2]] = count[h[2]] + 1
      end
    else
      redis.call('ZREM', members, m)
    end
  end
  local want = {count.n, count.done}
  for _, o in ipairs(OUTCOMES) do want[#want + 1] = count[o] end
  local fields = {'n', 'done', unpack(OUTCOMES)}
  local fix = {}
  for j, name in ipairs(fields) do
    if tonumber(f[j] or '0') ~= want[j] then
      fix[#fix + 1] = name
      fix[#fix + 1] = want[j]
    end
  end
  if #fix == 0 then return 'acted' end
  redis.call('HSET', fk, unpack(fix))
  return 'repaired'
end

register('ff_flow_reconcile', function(keys, args) return run_batch(keys, args, 'flow_work', flow_work_due, work_owner) end)
register('ff_reconcile_dependencies', function(keys, args) return run_batch(keys, args, 'waiting_children', recheck_waiting) end)
register('ff_project_flows', function(keys, args) return run_batch(keys, args, 'flows', project, flow_owner) end)
register('ff_create_flow', ff_create_flow)
register('ff_add_edge', ff_add_edge)
register('ff_cancel_flow', ff_cancel_flow)
register_ro('ff_flow_get', ff_flow_get)
register('ff_flow_drain', ff_flow_drain)
