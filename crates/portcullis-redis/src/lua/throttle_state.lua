-- A bucket as a table, for the scripts that handle leases and refunds
-- (after throttle_common.lua). The acquire script, which every non-leased
-- decision runs, does without these: each closure made per call costs Redis
-- time.

-- Reads a bucket: {tat = ns after now (may be negative, or nil for a full
-- bucket), o, e, x, and `mine`, the value of the lease field `field` if
-- one is given}. `dirty` says the bucket must be written back.
local function load(key, field)
  local v, mine
  if field then
    local both = redis.call('HMGET', key, 'b', field)
    v, mine = both[1], both[2]
  else
    v = redis.call('HGET', key, 'b')
  end
  local b = {o = 0, e = 0, x = 0, dirty = false, mine = mine}
  if v then
    local s, n
    s, n, b.o, b.e, b.x = struct.unpack('<ddddd', v)
    if s > 0 then b.tat = (s - now_s) * 1000000000 + n - now_ns end
  end
  return b
end

local function debt_of(b)
  local d = b.tat
  if not d or d < 0 then return 0 end
  return d
end

-- Writes the bucket `b` with `debt` (ns after now) spent; `fields` are more
-- field/value pairs to set (at most one pair). A bucket full and without
-- leases is deleted: that loses nothing.
local function save(key, b, debt, t, live_until, fields)
  if debt <= 0 and b.o <= 0 and #fields == 0 then
    if b.tat or b.dirty then redis.call('DEL', key) end
    return
  end
  b.e, b.x = write(key, debt, b.o, b.e, b.x, t, live_until, fields[1], fields[2])
end
