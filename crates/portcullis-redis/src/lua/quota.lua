-- One key's quota in one usage plan: count a request, or change what
-- remains, atomically. Mirrors portcullis-quota's in-memory store.
--
-- KEYS[1]: the state hash. KEYS[2]: the usage records (field: Julian day,
-- value: "used:remaining").
-- ARGV: op ('consume' | 'extend' | 'set' | 'reset'), window start,
-- window end, Julian day, limit, period kind (0 day, 1 week, 2 month), offset,
-- initial window start ('' for none), retention in days, expire-at (unix
-- seconds), update value.
--
-- Returns {admitted, remaining, is_new, day, used today}.
local MAX = 281474976710655
local op = ARGV[1]
local ws = tonumber(ARGV[2])
local day = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
if limit > MAX then limit = MAX end
local kind = tonumber(ARGV[6])
local offset = tonumber(ARGV[7])
local initial_ws = tonumber(ARGV[8])
local retention = tonumber(ARGV[9])
local expire_at = tonumber(ARGV[10])
local value = tonumber(ARGV[11]) or 0
local sig = limit * 4 + kind

local function fmt(n) return string.format('%.0f', n) end
local function clamp(n)
  if n < 0 then return 0 end
  if n > MAX then return MAX end
  return n
end
local function allowance(first_ws)
  local initial
  if initial_ws then initial = (initial_ws == ws) else initial = (first_ws == ws) end
  if initial then return clamp(limit - offset) end
  return clamp(limit)
end

local st = redis.call('HMGET', KEYS[1], 'fp', 'ws', 'day', 'base', 'rem', 'alw', 'sig')
local is_new = 0
local fp, cws, cday, base, rem, alw, csig
if not st[1] then
  is_new = 1
  fp, cws, cday, csig = ws, ws, day, sig
  alw = allowance(fp)
  rem, base = alw, alw
else
  fp, cws, cday = tonumber(st[1]), tonumber(st[2]), tonumber(st[3])
  base, rem, alw, csig = tonumber(st[4]), tonumber(st[5]), tonumber(st[6]), tonumber(st[7])
end

local function replace(new)
  new = clamp(new)
  base = clamp(base - rem) + new
  rem = new
end

-- Whether more than the counters changed: then every field, and the expiry
-- (which follows the period's end), are written.
local moved = is_new == 1
if is_new == 0 then
  local new_period = (csig % 4) ~= kind or ws > cws
  if new_period or day > cday then
    -- File the day being counted; time only moves forward.
    redis.call('HSET', KEYS[2], fmt(cday), fmt(clamp(base - rem)) .. ':' .. fmt(rem))
    local carried = rem
    if new_period then
      carried = allowance(fp)
      cws, alw = ws, carried
    end
    cday, base, rem, csig = day, carried, carried, sig
    moved = true
    local oldest = day - retention
    for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
      if tonumber(field) < oldest then redis.call('HDEL', KEYS[2], field) end
    end
  elseif sig ~= csig then
    -- Same period, new limit: what remains moves by the difference.
    local diff = math.floor(sig / 4) - math.floor(csig / 4)
    replace(rem + diff)
    alw = clamp(alw + diff)
    csig = sig
    moved = true
  end
end

local admitted = 0
if op == 'consume' then
  if rem > 0 then
    rem = rem - 1
    admitted = 1
  end
elseif op == 'extend' then
  replace(rem + value)
elseif op == 'set' then
  replace(value)
elseif op == 'reset' then
  replace(alw)
end

if moved then
  redis.call('HSET', KEYS[1], 'fp', fmt(fp), 'ws', fmt(cws), 'day', fmt(cday), 'base', fmt(base),
    'rem', fmt(rem), 'alw', fmt(alw), 'sig', fmt(csig))
  redis.call('EXPIREAT', KEYS[1], fmt(expire_at))
  redis.call('EXPIREAT', KEYS[2], fmt(expire_at))
elseif op == 'consume' then
  -- The common case: one counter taken; a refusal writes nothing.
  if admitted == 1 then redis.call('HSET', KEYS[1], 'rem', fmt(rem)) end
else
  redis.call('HSET', KEYS[1], 'base', fmt(base), 'rem', fmt(rem))
end
return {admitted, rem, is_new, cday, clamp(base - rem)}
