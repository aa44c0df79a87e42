-- Shared by the throttle scripts (acquire, refund, lease): the time, the
-- sweep of expired leases and the write of a bucket's one hash.
--
-- ARGV[1]: 'r' to read the time from Redis (TIME), or 'c' to use ARGV[2..3].
-- ARGV[2], ARGV[3]: the caller's time, whole seconds and nanoseconds.
--
-- A bucket is one hash:
--   b     five doubles (struct '<ddddd'), read and written in one command:
--         s, n  the GCRA theoretical arrival time (TAT) of the tokens SPENT,
--               whole seconds and nanoseconds (every number stays far below
--               2^53, so doubles hold them exactly); 0, 0: full;
--         o     tokens OUTSTANDING in leases (they do not refill), the sum
--               of the lease fields;
--         e     a time (ms) at or before every lease's deadline: when to
--               sweep (0: no lease);
--         x     the key's expiry (ms) as last set, so PEXPIRE is sent only
--               when the key must live longer;
--   l:<lease id>  one replica's lease: two doubles (struct '<dd'), its
--         tokens and its deadline (ms).
-- A lease past its deadline is counted as spent AT its deadline (its tokens
-- join the TAT then): a replica that died holding it costs under-admission,
-- never over.
local now_s, now_ns
if ARGV[1] == 'r' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1])
  now_ns = tonumber(t[2]) * 1000
else
  now_s = tonumber(ARGV[2])
  now_ns = tonumber(ARGV[3])
end
local now_ms = now_s * 1000 + math.floor(now_ns / 1000000)

-- Counts every lease past its deadline as spent at its deadline, in
-- deadline order, and recomputes o and e from the leases still live.
local function sweep(key, b, t)
  if b.e == 0 or b.e > now_ms then return end
  local all = redis.call('HGETALL', key)
  local expired, o, e = {}, 0, 0
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 'l:' then
      local tokens, deadline = struct.unpack('<dd', all[i + 1])
      if deadline <= now_ms then
        expired[#expired + 1] = {deadline, tokens}
        redis.call('HDEL', key, f)
      else
        o = o + tokens
        if e == 0 or deadline < e then e = deadline end
      end
    end
  end
  table.sort(expired, function(a, c) return a[1] < c[1] end)
  for _, lease in ipairs(expired) do
    local at = (lease[1] - now_s * 1000) * 1000000 - now_ns
    local tat = b.tat
    if not tat or tat < at then tat = at end
    b.tat = tat + lease[2] * t
  end
  b.o, b.e, b.dirty = o, e, true
end

-- Writes a bucket's hash: `debt` (ns after now) spent, `o` tokens out in
-- leases, `e` the sweep time, `x` the expiry last set, and one more
-- field/value pair when `field` is given. The key lives at least until
-- everything in it has refilled: PEXPIRE only when that is past the expiry
-- last set, and then with slack, so a hot key is not re-expired on every
-- call. Returns the new e and x.
local function write(key, debt, o, e, x, t, live_until, field, value)
  local s, n = 0, 0
  if debt > 0 then
    s = now_s + math.floor((now_ns + debt) / 1000000000)
    n = (now_ns + debt) % 1000000000
  end
  if o <= 0 then e = 0 end
  local need = math.max(now_ms, live_until or 0) + math.floor((debt + o * t) / 1000000) + 2
  local expire
  if need > x then
    expire = need + (need - now_ms) + 1000
    x = expire
  end
  local packed = struct.pack('<ddddd', s, n, o, e, x)
  if field then
    redis.call('HSET', key, 'b', packed, field, value)
  else
    redis.call('HSET', key, 'b', packed)
  end
  if expire then redis.call('PEXPIRE', key, expire - now_ms) end
  return e, x
end
