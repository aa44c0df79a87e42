-- Gives back the token an admitted request took from each bucket (used on
-- Redis Cluster when a later group of buckets, on another slot, refused).
-- After throttle_common.lua.
--
-- KEYS: the buckets. ARGV as throttle_acquire.lua (one packed argument per
-- bucket); only t is read.
for i = 1, #KEYS do
  local b = load(KEYS[i])
  if b.tat then
    local t = struct.unpack('<ddd', ARGV[3 + i])
    local debt = b.tat - t
    if debt < 0 then debt = 0 end
    save(KEYS[i], b, debt, t, nil, {})
  end
end
return #KEYS
