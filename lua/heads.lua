-- The engine's periodic rescan: one read-only call per partition tells every
-- scanner where its index's earliest member is, instead of one read per
-- scanner and partition (core/src/contract/scan.rs HEAD_INDEXES, module F).

local err, register_ro = P.err, P.register_ro
local idx_key = K.idx_key
local index_target = EXEC.index_target

-- The sorted sets whose heads may be asked for (never a set or hash: ZRANGE
-- on one would raise).
local HEADS = F.HEAD_INDEXES
local MAX_HEADS = 32

-- ff_partition_heads  KEYS: the partition's `all` index  ARGV: index names
-- -> {1, (earliest score, or -1 when empty) per name}
local function ff_partition_heads(keys, args)
  local _, tag, e = index_target(keys, 'all')
  if e then return e end
  if #args < 1 or #args > MAX_HEADS then
    return err('invalid_argument', 'indexes:expected 1..' .. MAX_HEADS .. ' index names')
  end
  for _, name in ipairs(args) do
    if not HEADS[name] then return err('invalid_argument', 'index:not a due-time index: ' .. tostring(name)) end
  end
  local out, keys_of = {1}, {}
  for i, name in ipairs(args) do
    keys_of[i] = idx_key(tag, name)
    out[i + 1] = -1
  end
  -- An idle partition's indexes are all empty: one EXISTS answers for them.
  if redis.call('EXISTS', unpack(keys_of)) == 0 then return out end
  for i, key in ipairs(keys_of) do
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if head[2] then out[i + 1] = tonumber(head[2]) end
  end
  return out
end

register_ro('ff_partition_heads', ff_partition_heads)
