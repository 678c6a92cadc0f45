-- The engine's flow scanners (run_batch, scanners.lua).

local hex32_ok, register = P.hex32_ok, P.register
local deps_key, exec_key, flow_key = K.deps_key, K.exec_key, K.flow_key
local flow_members_key = K.flow_members_key
local idx_key = K.idx_key
local WAITING_RECHECK_MS, counted = EXEC.WAITING_RECHECK_MS, EXEC.counted
local FLOW_LIVE_PREFIX, LIVE_WORDS = F.FLOW_LIVE_PREFIX, F.LIVE_WORDS
local run_batch = SCAN.run_batch
local FLOW_INLINE_BUDGET, FLOW_PROJECT_MAX = FLOW.FLOW_INLINE_BUDGET, FLOW.FLOW_PROJECT_MAX
local W, queue_work = FLOW.W, FLOW.queue_work
local resolve_edge, settle = FLOW.resolve_edge, FLOW.settle
local work_item_ok = FLOW_CALLS.work_item_ok

-- run_batch owners (the record the filter reads; nil: malformed).
local function work_owner(item, tag)
  if not work_item_ok(item, tag) then return nil end
  if string.sub(item, 1, 2) == 'f:' then return flow_key(tag, string.sub(item, 3)), true end
  return exec_key(string.sub(item, 3))
end

local function flow_owner(flow, tag)
  if not hex32_ok(flow) then return nil end
  return flow_key(tag, flow), true
end

-- Flow reconciler: queued flow work whose announcement nobody acted on.
local function flow_work_due(_, tag, item)
  W.budget = FLOW_INLINE_BUDGET * 4
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
-- The words a member not ended is counted under (execution.lua counted),
-- and their fields in a flow's hash.
local LIVE_FIELDS = {}
for i = 1, #LIVE_WORDS do LIVE_FIELDS[i] = FLOW_LIVE_PREFIX .. LIVE_WORDS[i] end

local function project(fk, tag, flow)
  redis.call('ZREM', idx_key(tag, 'flows'), flow)
  local f = redis.call('HMGET', fk, 'n', 'done', unpack(OUTCOMES))
  if not f[1] then return 'repaired' end
  local members = flow_members_key(tag, flow)
  if redis.call('ZCARD', members) > FLOW_PROJECT_MAX then return 'acted' end
  local count = {n = 0, done = 0}
  for _, o in ipairs(OUTCOMES) do count[o] = 0 end
  for _, w in ipairs(LIVE_WORDS) do count[w] = 0 end
  for _, m in ipairs(redis.call('ZRANGE', members, 0, -1)) do
    local h = redis.call('HMGET', exec_key(m), 'phase', 'outcome', 'elig')
    if h[1] then
      count.n = count.n + 1
      if h[1] == 'terminal' and count[h[2]] then
        count.done = count.done + 1
        count[h[2]] = count[h[2]] + 1
      elseif h[1] ~= 'terminal' then
        local w = counted(h[1], h[3] or '', nil)
        if w and count[w] then count[w] = count[w] + 1 end
      end
    else
      redis.call('ZREM', members, m)
    end
  end
  local live = redis.call('HMGET', fk, unpack(LIVE_FIELDS))
  for i = 1, #live do f[#f + 1] = live[i] end
  local want = {count.n, count.done}
  for _, o in ipairs(OUTCOMES) do want[#want + 1] = count[o] end
  for _, w in ipairs(LIVE_WORDS) do want[#want + 1] = count[w] end
  local fields = {'n', 'done', unpack(OUTCOMES)}
  for _, name in ipairs(LIVE_FIELDS) do fields[#fields + 1] = name end
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
