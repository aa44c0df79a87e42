-- One quota counter of the control plane (see `portcullis_control_plane::reservation`):
-- reserve a block, report a block, or UpdateUsage, in one atomic step. It mirrors
-- the local store's `State::advance`, `reserve`, `report` and `update_usage`
-- rule for rule; the conformance suite runs both.
--
-- KEYS[1] counter hash, KEYS[2] the pair's usage records (Julian day -> "used:remaining"),
-- KEYS[3] the plan's set of counted keys.
-- ARGV[1] mode: "reserve" | "update" | "report"; ARGV[2] the key id.
-- reserve / update: ARGV[3] period start, [4] period kind, [5] limit, [6] today (Julian),
--   [7] allowance in an initial period, [8] allowance otherwise, [9] initial mode
--   (1 the period is the configured initial one, 2 it is not, 0 the first period
--   counted is), [10] retention days, [11] want / update kind (1 extend, 2 set
--   remaining, 3 reset), [12] the update's number.
-- report: ARGV[3] period start, [4] period kind, [5] day (Julian), [6] generation,
--   [7] spent, [8] returned.
local MAXR = 281474976710655
local function s(n) return string.format('%d', n) end
local function sat(n) if n < 0 then return 0 end return n end

local raw = redis.call('HGETALL', KEYS[1])
local c = nil
if #raw > 0 then
  c = {}
  for i = 1, #raw, 2 do c[raw[i]] = tonumber(raw[i + 1]) end
end

local function put(cc)
  redis.call('HSET', KEYS[1], 'ps', s(cc.ps), 'fps', s(cc.fps), 'lim', s(cc.lim), 'kind', s(cc.kind),
    'day', s(cc.day), 'bud', s(cc.bud), 'res', s(cc.res), 'used', s(cc.used), 'base', s(cc.base),
    'allow', s(cc.allow), 'gen', s(cc.gen))
end

local function day_record(day)
  local rec = redis.call('HGET', KEYS[2], s(day))
  if not rec then return 0, 0 end
  local sep = string.find(rec, ':', 1, true)
  return tonumber(string.sub(rec, 1, sep - 1)), tonumber(string.sub(rec, sep + 1))
end

local mode = ARGV[1]
if mode == 'report' then
  if not c then return 0 end
  local start, kind, day = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local gen, spent, returned = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  if c.ps == start and c.kind == kind then
    local took = math.min(spent, sat(c.res - c.used))
    c.used = c.used + took
    if day < c.day then
      c.base = c.base + took
      local used, rem = day_record(day)
      redis.call('HSET', KEYS[2], s(day), s(used + took) .. ':' .. s(rem))
    end
    local back = math.min(returned, sat(c.res - c.used))
    c.res = c.res - back
    if gen ~= c.gen then c.bud = sat(c.bud - back) end
    put(c)
  elseif spent > 0 then
    local used, rem = day_record(day)
    redis.call('HSET', KEYS[2], s(day), s(used + spent) .. ':' .. s(rem))
  end
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
  return { granted, c.gen, sat(c.bud - c.res) }
end

-- update
local op, n = tonumber(ARGV[11]), tonumber(ARGV[12])
if op == 1 then
  c.bud = math.min(c.bud + n, c.used + MAXR)
elseif op == 2 then
  c.bud = c.res + math.min(n, MAXR)
  c.gen = c.gen + 1
else
  c.bud = c.res + c.allow
  c.gen = c.gen + 1
end
put(c)
return { c.day, sat(c.used - c.base), math.min(sat(c.bud - c.used), MAXR) }
