-- Waiting for an end, and progress on the way.
--
-- ff_watch marks an execution so that its end is announced on ENDED_CHANNEL
-- (make_terminal publishes for marked records only: nobody pays for
-- announcements nobody waits for). ff_progress stores a running attempt's
-- progress on its record, fenced by the lease.

local MAX_PROGRESS_BYTES = F.MAX_PROGRESS_BYTES
local err, ok, register = P.err, P.ok, P.register
local WATCHED, exec_target = EXEC.WATCHED, EXEC.exec_target
local fenced = LEASE.fenced

-- ff_watch  KEYS: exec  ARGV: eid -> {1, 'terminal' | 'watching'}
-- (idempotent: a repeat finds the mark set, or the end)
local function ff_watch(keys, args)
  local ek, _, e = exec_target(keys, args[1])
  if e then return e end
  local v = redis.call('HMGET', ek, 'phase', 'opt')
  if not v[1] then return err('not_found', args[1]) end
  if v[1] == 'terminal' then return ok('terminal') end
  local opt = v[2] or ''
  if not string.find(opt, WATCHED, 1, true) then
    redis.call('HSET', ek, 'opt', opt .. WATCHED)
  end
  return ok('watching')
end

-- ff_progress  KEYS: exec  ARGV: eid, lease_id, epoch, value -> {1}
-- (a repeat stores the same value again)
local function ff_progress(keys, args)
  local value = args[4] or ''
  if #value > MAX_PROGRESS_BYTES then
    return err('invalid_argument', 'progress:longer than ' .. MAX_PROGRESS_BYTES .. ' bytes')
  end
  local h, e = fenced(keys, args, 'progress')
  if e then return e end
  redis.call('HSET', h.ek, 'progress', value)
  return ok()
end

register('ff_watch', ff_watch)
register('ff_progress', ff_progress)
