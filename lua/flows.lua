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
--   ff:deps:<child>                hash: parent -> p (pending) | s (satisfied) |
--                                  i (impossible), upper case (P, S, I) for an
--                                  edge that passes the parent's result;
--                                  '#n', '#s', '#i' counts; '#d' the count of
--                                  data-passing edges; '#data' a passed result
--                                  kept until the child is created; '#dp' the
--                                  parent whose result is in '#data' or the
--                                  payload, while '#d' is 1
--   ff:passed:<child>              hash: parent -> its result, once '#d' > 1
--   ff:out:<parent>                sorted set, score 0: its children
-- Member fields: flow, join ('all' | 'any' | 'q:<n>'), jc ('1': cancel the
-- remaining parents once the join is decided), ready_at (a create delay to
-- honour once released), dcur (resolution cursor over ff:out).
-- flow_work members: 'd:<eid>' resolve an ended member's outgoing edges,
-- 'x:<eid>' cancel a decided child's remaining parents, 'f:<flow>' cancel a
-- flow's members.

local COMPLETION_CHANNEL, MAX_QUORUM = F.COMPLETION_CHANNEL, F.MAX_QUORUM
local WRITE_HOOKS, err, hex32_ok, now_ms = P.WRITE_HOOKS, P.err, P.hex32_ok, P.now_ms
local num = P.num
local deps_key, exec_key, flow_key = K.deps_key, K.exec_key, K.flow_key
local flow_members_key, passed_key = K.flow_members_key, K.passed_key
local idx_key, out_key = K.idx_key, K.out_key
local ms_text, zadd_due = MV.ms_text, MV.zadd_due
local FLOW_HOOKS, FLOW_RECONCILE_GRACE_MS = EXEC.FLOW_HOOKS, EXEC.FLOW_RECONCILE_GRACE_MS
local make_delayed, make_eligible = EXEC.make_delayed, EXEC.make_eligible
local make_terminal, make_waiting = EXEC.make_terminal, EXEC.make_waiting
local read_state = EXEC.read_state

-- Flow work a call does itself before leaving the rest to the engine.
local FLOW_INLINE_BUDGET = 64
-- A flow whose members changed is recounted by the projector after this.
local FLOW_PROJECT_DELAY_MS = 5000
-- The projector recounts flows up to this size in one call.
local FLOW_PROJECT_MAX = 1000

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
-- Work left by the current call: settled after it (WRITE_HOOKS, prelude.lua).

-- queue: {tag, item} in order; queued: tag .. item -> true; ended: {tag,
-- eid, outcome} of members ended by this call; budget: work units left.
local W = {queue = {}, queued = {}, ended = {}, budget = 0}

local function queue_work(tag, item)
  local k = tag .. item
  if not W.queued[k] then
    W.queued[k] = true
    W.queue[#W.queue + 1] = {tag, item}
  end
end

WRITE_HOOKS.before = function()
  W.queue, W.queued, W.ended, W.budget = {}, {}, {}, FLOW_INLINE_BUDGET
end

FLOW_HOOKS.member_ended = function(tag, eid, flow, outcome, now)
  local fk = flow_key(tag, flow)
  -- (numbers as text: a number argument is formatted with %.17g)
  redis.call('HINCRBY', fk, 'done', '1')
  redis.call('HINCRBY', fk, outcome, '1')
  redis.call('ZADD', idx_key(tag, 'flows'), 'NX', ms_text(now + FLOW_PROJECT_DELAY_MS), flow)
  if redis.call('EXISTS', out_key(eid)) == 1 then queue_work(tag, 'd:' .. eid) end
  W.ended[#W.ended + 1] = {tag, eid, outcome}
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
      make_delayed(nil, ck, tag, child, h, now, ready_at)
    else
      make_eligible(ck, tag, child, h, num(h.pri) or 0, now)
    end
    if h.ready_at then redis.call('HDEL', ck, 'ready_at') end
  elseif d == 'impossible' then
    make_terminal(nil, ck, tag, child, h, 'skipped', now, 'error', 'a dependency cannot be satisfied')
  end
  if d ~= 'waiting' and h.jc == '1' and s + i < n then queue_work(tag, 'x:' .. child) end
  return d
end

-- Resolve the edge parent -> child with the parent's outcome (once: a resolved
-- edge is left as it is). A data-passing parent's result is passed while the
-- child waits or is not created yet: it becomes the payload (the last one
-- passed, with several), and with several data-passing parents each is also
-- kept by parent in ff:passed (one alone is only the payload: no copy).
local function resolve_edge(tag, parent, child, outcome, now)
  local dk = deps_key(child)
  local d = redis.call('HMGET', dk, parent, '#d')
  local st = d[1]
  if st ~= 'p' and st ~= 'P' then return 'already' end
  local sat = outcome == 'success'
  -- (a data-passing edge stays upper case: ff_flow_members reports it)
  if st == 'P' then
    redis.call('HSET', dk, parent, sat and 'S' or 'I')
  else
    redis.call('HSET', dk, parent, sat and 's' or 'i')
  end
  redis.call('HINCRBY', dk, sat and '#s' or '#i', '1')
  if sat and st == 'P' then
    local ck = exec_key(child)
    local result = redis.call('HGET', exec_key(parent), 'result') or ''
    local passed = true
    if redis.call('EXISTS', ck) == 1 then
      local ph = redis.call('HMGET', ck, 'phase', 'elig')
      passed = ph[1] == 'runnable' and ph[2] == 'waiting_children'
      if passed then redis.call('HSET', ck, 'payload', result) end
    else
      redis.call('HSET', dk, '#data', result)
    end
    if passed then
      if (tonumber(d[2]) or 0) > 1 then
        redis.call('HSET', passed_key(child), parent, result)
      else
        redis.call('HSET', dk, '#dp', parent)
      end
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
    while W.budget > 0 do
      local children = redis.call('ZRANGE', out_key(id), cursor, cursor + W.budget - 1)
      for _, child in ipairs(children) do
        resolve_edge(tag, id, child, h[2], now)
      end
      W.budget = W.budget - #children
      cursor = cursor + #children
      if #children == 0 or W.budget > 0 then
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
        if W.budget == 0 then return false end
        W.budget = W.budget - 1
        cancel_member(tag, parent, 'another parent decided the join of ' .. id, now)
      end
    end
    return true
  else
    local fk = flow_key(tag, id)
    local f = redis.call('HMGET', fk, 'cancel', 'ccur')
    if not f[1] then return true end
    local cursor = tonumber(f[2]) or 0
    while W.budget > 0 do
      local members = redis.call('ZRANGE', flow_members_key(tag, id), cursor, cursor + W.budget - 1)
      for _, m in ipairs(members) do
        cancel_member(tag, m, f[1], now)
      end
      W.budget = W.budget - #members
      cursor = cursor + #members
      if #members == 0 or W.budget > 0 then
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
  if #W.queue == 0 and #W.ended == 0 then return end
  local now = now_ms()
  local pending = {}
  local i = 1
  while i <= #W.queue do
    local tag, item = W.queue[i][1], W.queue[i][2]
    if W.budget > 0 and work_item(tag, item, now) then
      redis.call('ZREM', idx_key(tag, 'flow_work'), item)
    else
      zadd_due(tag, 'flow_work', now + FLOW_RECONCILE_GRACE_MS, item)
      pending[tag] = true
    end
    i = i + 1
  end
  for _, e in ipairs(W.ended) do
    redis.call('PUBLISH', COMPLETION_CHANNEL, e[2] .. ' ' .. e[3] .. ' ' .. (pending[e[1]] and '1' or '0'))
  end
  W.queue, W.queued, W.ended = {}, {}, {}
end

WRITE_HOOKS.after = settle

---------------------------------------------------------------------------
-- Membership, from ff_create.

-- Check ff_create's flow arguments: nil when not a flow member.
FLOW_HOOKS.member_arg = function(tag, flow, join, jc)
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
  -- (a cancelled flow and its size limit refuse a new member, checked per
  -- creation by ff_create's item_check: the repeat of one already made is
  -- answered as made)
  return {flow = flow, join = join, jc = jc, fk = fk, n = tonumber(f[1]) or 0, cancelled = f[2] ~= false}
end

-- Make `eid` a member of `flow` (its hash `fk`): the one place a member
-- enters a flow (ff_create's members, ff_add_execution_to_flow).
local function enter_flow(ek, tag, eid, flow, fk, join, jc)
  redis.call('HSET', ek, 'flow', flow, 'join', join, 'jc', jc)
  redis.call('ZADD', flow_members_key(tag, flow), 0, eid)
  redis.call('HINCRBY', fk, 'n', '1')
end

-- Place a new member: waiting on the edges declared before it existed, or
-- released at once when they already decide its join.
FLOW_HOOKS.member_created = function(ek, tag, eid, m, now, delay, lane, pri)
  enter_flow(ek, tag, eid, m.flow, m.fk, m.join, m.jc)
  local dk = deps_key(eid)
  local c = redis.call('HMGET', dk, '#n', '#data')
  if c[2] then
    redis.call('HSET', ek, 'payload', c[2])
    redis.call('HDEL', dk, '#data')
  end
  -- (not placed yet: counted from its placement on)
  local placed = {lane = lane, flow = m.flow}
  if tonumber(c[1] or '0') == 0 then
    -- No edges yet: it runs as any execution (edges added before its first
    -- claim still hold it back).
    if delay > 0 then
      make_delayed(nil, ek, tag, eid, placed, now, now + delay)
    else
      make_eligible(ek, tag, eid, placed, pri, now)
    end
    return
  end
  if delay > 0 then redis.call('HSET', ek, 'ready_at', ms_text(now + delay)) end
  make_waiting(ek, tag, eid, placed, now)
  -- (its parents may have ended already)
  decide_child(tag, eid, now)
end

--- @export FLOW_INLINE_BUDGET, FLOW_PROJECT_MAX, W, queue_work, resolve_edge, settle, join_ok,
--- @export enter_flow
