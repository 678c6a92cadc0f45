-- MemoryStore's function engine, Lua side: the environment Redis 7.0 gives a
-- Functions library, rebuilt in plain Lua 5.1.
--
--  * library code runs in its own environment table: reading a global that
--    does not exist raises "Script attempted to access nonexistent global
--    variable", writing one raises "Attempt to modify a readonly table";
--  * at load time `redis` offers register_function (and log); at run time
--    call, pcall, error_reply, status_reply, log, setresp, set_repl;
--  * errors are tables {err = 'CODE message'} and the message handler adds
--    where the library raised them, as Redis's __redis__err__handler does.
--
-- redis.call / redis.pcall are Rust callbacks (C functions to Lua, so that
-- `return redis.call(...)` keeps the caller's frame, as in Redis) installed
-- for each call. A callback cannot raise a Lua table, so it stores the value
-- to raise in H.pending and fails; whoever catches the failure (the message
-- handler, or pcall / xpcall as the library sees them) swaps it back.
--
-- Loaded once per Lua state as the chunk '=ffhost'; gets the Rust-made
-- primitives and returns H, the host table Rust drives.

local prims = ...
local HOST = '=ffhost'
local getinfo = debug.getinfo
local error, pcall, xpcall, type, tostring, tonumber = error, pcall, xpcall, type, tostring, tonumber
local setmetatable, getmetatable, rawget, rawset, rawequal = setmetatable, getmetatable, rawget, rawset, rawequal
local select, next, ipairs, pairs, unpack, assert = select, next, ipairs, pairs, unpack, assert
local loadstring, load, setfenv, collectgarbage, gcinfo = loadstring, load, setfenv, collectgarbage, gcinfo
local string, table, math, coroutine = string, table, math, coroutine
local find, sub, gsub = string.find, string.sub, string.gsub

local H = {}

-- A failed Rust callback's error value (userdata) stands for H.pending.
local function take_pending(e)
  local p = H.pending
  if p ~= nil and type(e) == 'userdata' then
    H.pending = nil
    return p
  end
  return e
end

-- Redis's __redis__err__handler: string errors become {err = 'ERR ...'}; the
-- error gets the source and line of the library code that raised it. Frames of
-- this file stand for Redis's C API functions and are looked through.
local function err_handler(e)
  e = take_pending(e)
  local level = 2
  local i = getinfo(level, 'Sl')
  if i and i.what == 'C' then
    level = level + 1
    i = getinfo(level, 'Sl')
  end
  while i and i.source == HOST do
    level = level + 1
    i = getinfo(level, 'Sl')
  end
  if type(e) ~= 'table' then
    e = {err = 'ERR ' .. tostring(e)}
  end
  if i then
    e.source = i.source
    e.line = i.currentline
  end
  return e
end

-- pcall and xpcall as library code sees them: a redis.call failure caught
-- there is the error table, as in Redis.
local function fix(ok, ...)
  if ok then return ok, ... end
  return false, take_pending((...))
end

local function lib_pcall(f, ...)
  return fix(pcall(f, ...))
end

local function lib_xpcall(f, handler)
  return xpcall(f, function(e) return handler(take_pending(e)) end)
end

local function err_table(msg)
  return {err = msg}
end

-- An error reply built the way Redis's luaPushErrorBuff builds one.
local function error_reply(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then
    return err_table('ERR wrong number or type of arguments')
  end
  if sub(e, 1, 1) == '-' then e = sub(e, 2) end
  if not find(e, ' ', 1, true) then e = 'ERR ' .. e end
  return err_table((gsub(e, '[\r\n]+$', '')))
end

local function status_reply(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return err_table('ERR wrong number or type of arguments')
  end
  return {ok = s}
end

local function log(level, ...)
  if type(level) ~= 'number' then
    error(err_table('ERR First argument must be a number (log level).'))
  end
  local parts = {}
  for k = 1, select('#', ...) do
    parts[#parts + 1] = tostring((select(k, ...)))
  end
  prims.log(level, table.concat(parts, ' '))
end

local function not_in_a_call()
  error(err_table('ERR redis.call can only be used while a function runs'))
end

local function missing(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end

local function protected(t)
  return setmetatable(t, {__index = missing})
end

local function constants(r)
  r.LOG_DEBUG, r.LOG_VERBOSE, r.LOG_NOTICE, r.LOG_WARNING = 0, 1, 2, 3
  r.REPL_NONE, r.REPL_AOF, r.REPL_SLAVE, r.REPL_REPLICA, r.REPL_ALL = 0, 1, 2, 2, 3
  r.REDIS_VERSION, r.REDIS_VERSION_NUM = '7.0.15', 0x07000f
  return r
end

-- redis.* at run time. call / pcall are set for each call (H.set_call).
local redis_run = constants({
  call = not_in_a_call,
  pcall = not_in_a_call,
  error_reply = error_reply,
  status_reply = status_reply,
  log = log,
  setresp = function(n)
    if n ~= 2 and n ~= 3 then
      error(err_table('ERR RESP version must be 2 or 3.'))
    end
  end,
  set_repl = function() end,
})
protected(redis_run)

-- What a library registers while it loads.
local loading = nil

local KNOWN_FLAGS = {
  ['no-writes'] = true, ['allow-oom'] = true, ['allow-stale'] = true,
  ['no-cluster'] = true, ['allow-cross-slot-keys'] = true,
}

local function register(name, callback, flags)
  local no_writes = false
  if flags ~= nil then
    if type(flags) ~= 'table' then
      error(err_table('ERR flags argument to redis.register_function must be a table representing function flags'))
    end
    for _, f in ipairs(flags) do
      if type(f) ~= 'string' or not KNOWN_FLAGS[f] then
        error(err_table('ERR unknown flag given'))
      end
      if f == 'no-writes' then no_writes = true end
    end
  end
  if not find(name, '^[%w_]+$') then
    -- Redis 7.0 says "Library" here too.
    error(err_table('ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long'))
  end
  for _, f in ipairs(loading) do
    if f.name == name then
      error(err_table('ERR Function already exists in the library'))
    end
  end
  loading[#loading + 1] = {name = name, callback = callback, no_writes = no_writes}
end

local function register_function(...)
  if loading == nil then
    error(err_table('ERR redis.register_function can only be called on FUNCTION LOAD command'))
  end
  local n = select('#', ...)
  if n == 1 then
    local t = ...
    if type(t) ~= 'table' then
      error(err_table('ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).'))
    end
    local name, callback, flags
    for k, v in pairs(t) do
      if type(k) ~= 'string' and type(k) ~= 'number' then
        error(err_table('ERR named argument key given to redis.register_function is not a string'))
      elseif k == 'function_name' then
        if type(v) ~= 'string' and type(v) ~= 'number' then
          error(err_table('ERR function_name argument given to redis.register_function must be a string'))
        end
        name = tostring(v)
      elseif k == 'description' then
        if type(v) ~= 'string' and type(v) ~= 'number' then
          error(err_table('ERR description argument given to redis.register_function must be a string'))
        end
      elseif k == 'callback' then
        if type(v) ~= 'function' then
          error(err_table('ERR callback argument given to redis.register_function must be a function'))
        end
        callback = v
      elseif k == 'flags' then
        if type(v) ~= 'table' then
          error(err_table('ERR flags argument to redis.register_function must be a table representing function flags'))
        end
        flags = v
      else
        error(err_table('ERR unknown argument given to redis.register_function'))
      end
    end
    if name == nil then
      error(err_table('ERR redis.register_function must get a function name argument'))
    end
    if callback == nil then
      error(err_table('ERR redis.register_function must get a callback argument'))
    end
    register(name, callback, flags)
  elseif n == 2 then
    local name, callback = ...
    if type(name) ~= 'string' and type(name) ~= 'number' then
      error(err_table('ERR first argument to redis.register_function must be a string'))
    end
    if type(callback) ~= 'function' then
      error(err_table('ERR second argument to redis.register_function must be a function'))
    end
    register(tostring(name), callback, nil)
  else
    error(err_table('ERR wrong number of arguments to redis.register_function'))
  end
end

local redis_load = protected(constants({
  register_function = register_function,
  log = log,
  setresp = redis_run.setresp,
}))

-- The environment of library code: empty, read through to the API of the
-- moment (load time or run time), never written.
local env = {}

-- Code loaded at run time sees the same environment.
local function lib_loadstring(text, name)
  local f, e = loadstring(text, name)
  if f then setfenv(f, env) end
  return f, e
end

local function lib_load(reader, name)
  local f, e = load(reader, name)
  if f then setfenv(f, env) end
  return f, e
end

-- (`bit` is there at run time only, as in Redis 7.0.)
local function api(redis, bit)
  return protected({
    redis = redis, bit = bit, _G = env, _VERSION = _VERSION,
    string = string, table = table, math = math, coroutine = coroutine,
    tonumber = tonumber, tostring = tostring, type = type, ipairs = ipairs,
    pairs = pairs, next = next, unpack = unpack, select = select, error = error,
    assert = assert, pcall = lib_pcall, xpcall = lib_xpcall,
    setmetatable = setmetatable, getmetatable = getmetatable, rawget = rawget,
    rawset = rawset, rawequal = rawequal, loadstring = lib_loadstring, load = lib_load,
    collectgarbage = collectgarbage, gcinfo = gcinfo,
  })
end

local run_api, load_api = api(redis_run, prims.bit), api(redis_load, nil)
local current_api = run_api

setmetatable(env, {
  __index = function(_, k)
    local v = rawget(current_api, k)
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})

-- Load a library's code (the text after its `#!lua` line, which keeps the
-- line numbers). -> true, {{name=, callback=, no_writes=}, ...} | false, message
function H.load(code)
  local chunk, msg = loadstring(code, '@user_function')
  if not chunk then
    return false, 'Error compiling function: ' .. tostring(msg)
  end
  setfenv(chunk, env)
  loading = {}
  current_api = load_api
  local ok, e = xpcall(chunk, err_handler)
  current_api = run_api
  local registered = loading
  loading = nil
  if not ok then
    local m = type(e) == 'table' and e.err or e
    return false, 'Error registering functions: ' .. tostring(m)
  end
  return true, registered
end

-- Run one function. -> true, result | false, error table
function H.run(callback, keys, args, call, pcall_)
  redis_run.call, redis_run.pcall = call, pcall_
  H.pending = nil
  local ok, result = xpcall(function() return callback(keys, args) end, err_handler)
  redis_run.call, redis_run.pcall = not_in_a_call, not_in_a_call
  H.pending = nil
  return ok, result
end

return H
