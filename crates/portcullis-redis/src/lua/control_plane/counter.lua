-- One quota counter of the control plane (see `portcullis_control_plane::reservation`):
-- reserve a block (reporting the previous one first), report a block, or UpdateUsage,
-- in one atomic step. It mirrors the local store's `State::advance`, `renew`, `report`
-- and `update_usage` rule for rule; the conformance suite runs both.
--
-- Lean on purpose: one HGETALL, and one HSET of only the fields that changed (a block
-- in the steady state writes `res` and `used`). The usage-record hash and the plan's
-- key set are touched only when a day ends or a counter is born.
--
-- KEYS[1] counter hash, KEYS[2] the pair's usage records (Julian day -> "used:remaining"),
-- KEYS[3] the plan's set of counted keys.
-- ARGV[1] mode: "reserve" | "update" | "report"; ARGV[2] the key id.
-- reserve / update: ARGV[3] period start, [4] period kind, [5] limit, [6] today (Julian),
--   [7] allowance in an initial period, [8] allowance otherwise, [9] initial mode
--   (1 the period is the configured initial one, 2 it is not, 0 the first period
--   counted is), [10] retention days, [11] want / update kind (1 extend, 2 set
--   remaining, 3 reset), [12] the update's number.
--   reserve: [12] [13] [14] a report of the previous block of the same period and day
--   (generation, spent, returned), or absent.
--   update: [13] the plan id, [14] the channel that announces counter changes.
-- report: ARGV[3] period start, [4] period kind, [5] day (Julian), [6] generation,
--   [7] spent, [8] returned.
local MAXR = 281474976710655
local function s(n) return string.format('%d', n) end
local function sat(n) if n < 0 then return 0 end return n end

local raw = redis.call('HGETALL', KEYS[1])
local c = nil
local was = {}
if #raw > 0 then
  c = {}
  for i = 1, #raw, 2 do
    local v = tonumber(raw[i + 1])
    c[raw[i]] = v
    was[raw[i]] = v
  end
end

local FIELDS = { 'ps', 'fps', 'lim', 'kind', 'day', 'bud', 'res', 'used', 'base', 'allow', 'gen' }
local function put(cc)
  local args = {}
  for _, f in ipairs(FIELDS) do
    if was[f] ~= cc[f] then
      args[#args + 1] = f
      args[#args + 1] = s(cc[f])
    end
  end
  if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
end

local function day_record(day)
  local rec = redis.call('HGET', KEYS[2], s(day))
  if not rec then return 0, 0 end
  local sep = string.find(rec, ':', 1, true)
  return tonumber(string.sub(rec, 1, sep - 1)), tonumber(string.sub(rec, sep + 1))
end

local function add_to_day(day, spent)
  local used, rem = day_record(day)
  redis.call('HSET', KEYS[2], s(day), s(used + spent) .. ':' .. s(rem))
end

-- A report: what a block spent, and its unspent part given back. What comes back
-- returns to the budget whatever the block's generation: an update counted
-- outstanding blocks against what it set.
local function report(start, kind, day, spent, returned)
  if not c then return end
  if c.ps == start and c.kind == kind then
    local took = math.min(spent, sat(c.res - c.used))
    c.used = c.used + took
    if day < c.day then
      c.base = c.base + took
      add_to_day(day, took)
    end
    c.res = c.res - math.min(returned, sat(c.res - c.used))
  elseif spent > 0 then
    add_to_day(day, spent)
  end
end

local mode = ARGV[1]
if mode == 'report' then
  report(tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7]), tonumber(ARGV[8]))
  if c then put(c) end
  return 0
end

local start, kind, limit, today = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local allow_initial, allow_normal = tonumber(ARGV[7]), tonumber(ARGV[8])
local initial_mode, retention = tonumber(ARGV[9]), tonumber(ARGV[10])
local function allowance(first_start)
  local initial
  if initial_mode == 1 then initial = true
  elseif initial_mode == 2 then initial = false
  else initial = (first_start == start) end
  if initial then return allow_initial end
  return allow_normal
end

if mode == 'reserve' and ARGV[12] then
  report(start, kind, today, tonumber(ARGV[13]), tonumber(ARGV[14]))
end

-- advance: move the counter to the request's period and day.
if not c then
  local a = allowance(start)
  c = { ps = start, fps = start, lim = limit, kind = kind, day = today, bud = a, res = 0,
        used = 0, base = 0, allow = a, gen = 0 }
  redis.call('SADD', KEYS[3], ARGV[2])
else
  local new_period = c.kind ~= kind or start > c.ps
  if new_period or today > c.day then
    redis.call('HSET', KEYS[2], s(c.day),
      s(sat(c.used - c.base)) .. ':' .. s(math.min(sat(c.bud - c.used), MAXR)))
    if new_period then
      local a = allowance(c.fps)
      c.ps = start; c.bud = a; c.allow = a; c.res = 0; c.used = 0
      c.gen = c.gen + 1; c.kind = kind; c.lim = limit
    end
    c.day = today
    c.base = c.used
    local oldest = today - math.min(retention, 100000)
    for _, d in ipairs(redis.call('HKEYS', KEYS[2])) do
      if tonumber(d) < oldest then redis.call('HDEL', KEYS[2], d) end
    end
  end
  if c.lim ~= limit then
    local function shift(n)
      if limit >= c.lim then return n + (limit - c.lim) end
      return sat(n - (c.lim - limit))
    end
    c.bud = math.min(shift(c.bud), MAXR + c.res)
    c.allow = math.min(shift(c.allow), MAXR)
    c.lim = limit
  end
end

if mode == 'reserve' then
  local want = tonumber(ARGV[11])
  local granted = math.min(want, sat(c.bud - c.res))
  c.res = c.res + granted
  put(c)
  return { granted, c.gen, sat(c.bud - c.res), sat(c.res - c.used) }
end

-- update: outstanding blocks count against what is set (see the reservation docs).
local op, n = tonumber(ARGV[11]), tonumber(ARGV[12])
if op == 1 then
  c.bud = math.min(c.bud + n, c.used + MAXR)
elseif op == 2 then
  c.bud = c.used + math.min(n, MAXR)
  c.gen = c.gen + 1
else
  c.bud = c.used + c.allow
  c.gen = c.gen + 1
end
put(c)
-- Replicas holding blocks of this counter give them back when they hear this.
redis.call('PUBLISH', ARGV[14], cjson.encode({ ARGV[13], ARGV[2] }))
return { c.day, sat(c.used - c.base), math.min(sat(c.bud - c.used), MAXR) }
