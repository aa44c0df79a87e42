-- One request's usage-plan decision: its throttle buckets, then its quota,
-- in one script. Assembled in front of this file (see usage_plan.rs):
-- `throttle(KEYS, ARGV)` is throttle_acquire.lua and `quota(KEYS, ARGV)` is
-- quota.lua, unchanged, each as a function of its own keys and arguments.
--
-- KEYS: the n throttle buckets, most specific first; then, when a quota
-- applies, the quota's state and usage-record hashes.
-- ARGV[1]: n. ARGV[2]: '1' when a quota applies, else '0'.
-- Then, when n > 0, throttle_acquire.lua's 3 + n arguments; then, when a
-- quota applies, quota.lua's 11 arguments.
--
-- The throttle decides first: a throttled request consumes no quota. A
-- request the quota refuses keeps the throttle tokens it took, as with the
-- two layers one after the other (API Gateway also checks the throttle
-- first and counts the request against the throttle either way).
--
-- Returns {throttle held, throttle code, quota decided (0/1), quota
-- admitted, quota remaining, quota key is new}: held and code as
-- throttle_acquire.lua's reply (held * 16 + code), split (no buckets: 0
-- and 1, admitted).
local n = tonumber(ARGV[1])
local has_quota = ARGV[2] == '1'
local held, code = 0, 1
local at = 2
if n > 0 then
  local tk, ta = {}, {}
  for i = 1, n do tk[i] = KEYS[i] end
  for i = 1, 3 + n do ta[i] = ARGV[at + i] end
  local r = throttle(tk, ta)
  if type(r) == 'table' then
    held, code = r[1], r[2]
  else
    code = r % 16
    held = (r - code) / 16
  end
  at = at + 3 + n
end
if code % 2 == 0 or not has_quota then
  return {held, code, 0, 0, 0, 0}
end
local qa = {}
for i = 1, 11 do qa[i] = ARGV[at + i] end
local q = quota({KEYS[n + 1], KEYS[n + 2]}, qa)
return {held, code, 1, q[1], q[2], q[3]}
