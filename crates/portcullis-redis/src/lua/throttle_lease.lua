-- Leases of throttle tokens (after throttle_common.lua): reports what a
-- replica's leases spent, gives tokens back, and grants new leases, for up
-- to 8 buckets in one call, all or nothing.
--
-- KEYS: the buckets (hashes, see throttle_common.lua).
-- ARGV[1..3]: the time (see throttle_common.lua). ARGV[4]: the lease ttl (ms).
-- ARGV[4 + 7(i-1) + 1 .. 7] for bucket i: t (ns per token), cap (burst t),
--   the lease field ("l:<lease id>"), spent (tokens admitted since the last
--   call), returned (tokens given back), kept (tokens the replica keeps
--   spending), want (tokens asked for; 0 to only report).
--
-- A report moves `spent` from the lease to the TAT, at now (the tokens were
-- spent earlier: counting them now is conservative); `returned` leaves the
-- lease; what the lease holds beyond spent + returned + kept (a call that
-- timed out on the replica) is counted as spent too. A lease already past
-- its deadline was counted as spent by the sweep: its report is ignored and
-- `lost` tells the replica its kept tokens are gone (as when the lease holds
-- fewer than spent + returned + kept: then what it holds is counted spent).
--
-- A bucket grants a lease when its level (burst - debt/t - outstanding, in
-- tokens) is at least 1: min(want, max(1, floor(level / 4))) tokens. If any
-- bucket that was asked for tokens has a level below 1, none is granted
-- (the reports still apply). Every lease left holding tokens gets the
-- deadline now + ttl.
--
-- Returns {refused bucket (1-based, 0 if none), retry after ns, full after
-- ns, then per bucket: granted, lost (0/1), tokens left (level)}.
local ttl = tonumber(ARGV[4])
local n = #KEYS
local st = {}
for i = 1, n do
  local a = 4 + 7 * (i - 1)
  local t = tonumber(ARGV[a + 1])
  local cap = tonumber(ARGV[a + 2])
  local field = ARGV[a + 3]
  local spent = tonumber(ARGV[a + 4])
  local returned = tonumber(ARGV[a + 5])
  local kept = tonumber(ARGV[a + 6])
  local want = tonumber(ARGV[a + 7])
  local b = load(KEYS[i], field)
  sweep(KEYS[i], b, t)
  local mine, had = 0, false
  if b.mine then
    local tokens, deadline = struct.unpack('<dd', b.mine)
    if deadline > now_ms then mine = tokens end
    had = true
  end
  local lost, used = 0, 0
  if mine > 0 then
    local s = math.min(spent, mine)
    local r = math.min(returned, mine - s)
    local k = mine - s - r
    used = s
    if k > kept then
      used = used + k - kept
      k = kept
    elseif k < kept then
      -- The replica counts on more than the lease holds: it drops them all.
      used = used + k
      k = 0
      lost = 1
    end
    b.o = b.o - (mine - k)
    mine = k
    b.dirty = true
  elseif kept > 0 then
    lost = 1
  end
  if used > 0 then
    local tat = b.tat
    if not tat or tat < 0 then tat = 0 end
    b.tat = tat + used * t
  end
  local debt = debt_of(b)
  if debt > cap then debt = cap end
  st[i] = {b = b, t = t, cap = cap, field = field, mine = mine, had = had or mine > 0,
    want = want, lost = lost, debt = debt}
end

local refused = 0
for i = 1, n do
  local s = st[i]
  if s.want > 0 and s.cap - s.debt - s.b.o * s.t < s.t then
    refused = i
    break
  end
end

local out = {refused, 0, 0}
if refused > 0 then
  local s = st[refused]
  local held = s.debt + s.b.o * s.t
  out[2] = held - (s.cap - s.t)
  out[3] = held
end
for i = 1, n do
  local s = st[i]
  local b = s.b
  local g = 0
  if refused == 0 and s.want > 0 then
    local level = math.floor((s.cap - s.debt - b.o * s.t) / s.t)
    g = math.min(s.want, math.max(1, math.floor(level / 4)))
    s.mine = s.mine + g
    b.o = b.o + g
    b.dirty = true
  end
  local fields, live_until = {}, nil
  if s.mine > 0 then
    live_until = now_ms + ttl
    fields = {s.field, struct.pack('<dd', s.mine, live_until)}
    if b.e == 0 or live_until < b.e then b.e = live_until end
  elseif s.had then
    redis.call('HDEL', KEYS[i], s.field)
  end
  save(KEYS[i], b, s.debt, s.t, live_until, fields)
  out[#out + 1] = g
  out[#out + 1] = s.lost
  out[#out + 1] = math.floor((s.cap - s.debt - b.o * s.t) / s.t)
end
return out
