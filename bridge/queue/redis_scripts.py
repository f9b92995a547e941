"""The Lua scripts of the Redis Streams queue: each touches several keys atomically (see redis_streams.py)."""

HELD = """
local function held(stream, group, id)
  local pending = redis.call('XPENDING', stream, group, id, id, 1)
  local entry = redis.call('XRANGE', stream, id, id)
  if #pending == 0 or #entry == 0 then return nil end
  local fields, before = entry[1][2], 0
  for j = 1, #fields, 2 do
    if fields[j] == 'd' then before = tonumber(fields[j + 1]) end
  end
  return before + pending[1][4], fields
end
"""

# KEYS: the dedup key and the lane stream of each entry, interleaved.  ARGV: dedup TTL, then e, id, p, z per entry.
ENQUEUE = """
local ids = {}
local t = redis.call('TIME')
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
for i = 1, #KEYS / 2 do
  local a = 1 + (i - 1) * 4
  if redis.call('SET', KEYS[2 * i - 1], '1', 'NX', 'EX', ARGV[1]) then
    ids[i] = redis.call('XADD', KEYS[2 * i], '*',
      'e', ARGV[a + 1], 'id', ARGV[a + 2], 'p', ARGV[a + 3], 'z', ARGV[a + 4], 'd', '0', 't', now)
  else
    ids[i] = false
  end
end
return ids
"""

# KEYS: lane streams in claim order, then their delayed sets in the same order.
# ARGV: group, consumer, count, how many due retries to move back per lane.
# Returns {claimed, ms until the next retry is due or -1, last delivered id per lane (only when nothing claimed)}.
CLAIM = """
local lanes = #KEYS / 2
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local next_due = -1
for i = 1, lanes do
  local delayed = KEYS[lanes + i]
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, ARGV[4])) do
    redis.call('XADD', KEYS[i], '*', unpack(cmsgpack.unpack(member)))
    redis.call('ZREM', delayed, member)
  end
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(tonumber(first[2]) - now, 1)
    if next_due < 0 or wait < next_due then next_due = wait end
  end
end
local want, claimed = tonumber(ARGV[3]), {}
for i = 1, lanes do
  if want <= 0 then break end
  local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', KEYS[i], '>')
  if got then
    for _, entry in ipairs(got[1][2]) do
      claimed[#claimed + 1] = {i, entry[1], entry[2]}
      want = want - 1
    end
  end
end
local last = {}
if #claimed == 0 then
  for i = 1, lanes do
    last[i] = '0-0'
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do
      local info = {}
      for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
      if info['name'] == ARGV[1] then last[i] = info['last-delivered-id'] end
    end
  end
end
return {claimed, next_due, last}
"""

# KEYS: lane streams in claim order.  ARGV: group, consumer, min idle ms, count.
# Returns {{lane index, id, fields, delivery count of this copy}, ...}.
RECLAIM = """
local want, out = tonumber(ARGV[4]), {}
for i = 1, #KEYS do
  local cursor = '0-0'
  repeat
    local r = redis.call('XAUTOCLAIM', KEYS[i], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', want)
    cursor = r[1]
    for _, entry in ipairs(r[2]) do
      if entry then
        local pending = redis.call('XPENDING', KEYS[i], ARGV[1], entry[1], entry[1], 1)
        out[#out + 1] = {i, entry[1], entry[2], pending[1][4]}
        want = want - 1
      end
    end
  until cursor == '0-0' or want <= 0
  if want <= 0 then break end
end
return out
"""

# KEYS: the lane stream, its delayed set.  ARGV: group, id, deliveries the caller holds, delay ms, error.
RETRY = (
    HELD
    + """
local n, fields = held(KEYS[1], ARGV[1], ARGV[2])
if n ~= tonumber(ARGV[3]) then return 0 end
local kept = {}
for j = 1, #fields, 2 do
  local k = fields[j]
  if k ~= 'd' and k ~= 'err' and k ~= 'r' then kept[#kept + 1] = k; kept[#kept + 1] = fields[j + 1] end
end
for _, v in ipairs({'d', ARGV[3], 'err', ARGV[5], 'r', ARGV[2]}) do kept[#kept + 1] = v end
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[4])
redis.call('ZADD', KEYS[2], due, cmsgpack.pack(kept))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: the lane stream, the dead-letter stream.  ARGV: group, lane, reason, then (id, deliveries held) pairs.
BURY = (
    HELD
    + """
local buried = 0
for j = 4, #ARGV, 2 do
  local id = ARGV[j]
  local n, fields = held(KEYS[1], ARGV[1], id)
  if n == tonumber(ARGV[j + 1]) then
    for _, v in ipairs({'lane', ARGV[2], 'n', tostring(n), 'reason', ARGV[3], 'src', id}) do
      fields[#fields + 1] = v
    end
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    buried = buried + 1
  end
end
return buried
"""
)

# KEYS: the dead-letter stream, then lane streams by lane number (lane 0 first).
# ARGV: how many at most, then dead-letter ids (none: the oldest).
REQUEUE = """
local entries = {}
if #ARGV > 1 then
  for j = 2, #ARGV do
    local e = redis.call('XRANGE', KEYS[1], ARGV[j], ARGV[j])
    if e[1] then entries[#entries + 1] = e[1] end
  end
else
  entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[1])
end
for _, e in ipairs(entries) do
  local f, kept, lane = e[2], {}, 0
  for j = 1, #f, 2 do
    local k = f[j]
    if k == 'lane' then lane = tonumber(f[j + 1])
    elseif k == 'e' or k == 'id' or k == 'p' or k == 'z' or k == 't' then kept[#kept + 1] = k; kept[#kept + 1] = f[j + 1] end
  end
  kept[#kept + 1] = 'd'
  kept[#kept + 1] = '0'
  redis.call('XADD', KEYS[lane + 2], '*', unpack(kept))
  redis.call('XDEL', KEYS[1], e[1])
end
return #entries
"""

# KEYS: the lane stream.  ARGV: group, consumer, then ids.  Renews (XCLAIM JUSTID resets the idle time without
# counting a delivery) only the entries this consumer still holds.
EXTEND = """
local renewed = 0
for j = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[j], ARGV[j], 1)
  if #pending > 0 and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[j], 'JUSTID')
    renewed = renewed + 1
  end
end
return renewed
"""
