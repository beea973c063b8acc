"""The Lua scripts of the shared request budget: ``LocalRequestBudget``'s arithmetic, run in Redis.

One script call is atomic, so every process books its send instant, holds a concurrency lease and
reports its answers against one state per API key. Time is Redis's own ``TIME``: the processes'
clocks never need to agree, only the delays the scripts hand back are used locally.

The constants come from ``LocalRequestBudget`` itself, so the shared budget and the in-process one
cannot drift apart.
"""

from __future__ import annotations

from relaydance_async._http.budget import LocalRequestBudget

_B = LocalRequestBudget

PRELUDE = f"""
local state, leases = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local NEG, POS = -1e18, 1e18
local TAU, DECREASE, RECOVERY, PROBE = {_B.TAU!r}, {_B.DECREASE!r}, {_B.RECOVERY!r}, {_B.PROBE!r}
local MIN_RATE, CUT_GUARD, OVERSHOOT = {_B.MIN_RATE!r}, {_B.CUT_GUARD!r}, {_B.OVERSHOOT!r}
local MIN_SERVED = {_B.MIN_SERVED!r}
local GAP = 0.25
local LEARN = 0.25
local function num(f, default)
  local v = redis.call('HGET', state, f)
  if v then return tonumber(v) end
  return default
end
local function put(f, v)
  redis.call('HSET', state, f, string.format('%.17g', v))
end
local function fmt(v) return string.format('%.17g', v) end
local function demand(at)
  local da = num('demand_at', nil)
  if not da then return 0 end
  return num('demand', 0) * math.exp(-math.max(0, at - da) / TAU)
end
local function reserve()
  local start = math.max(now, num('paused_until', NEG))
  local rate = num('rate', nil)
  if rate then
    start = math.max(start, num('next', NEG))
    put('next', start + 1 / rate)
  end
  -- After a quiet spell (no request booked for GAP seconds) what gets through is measured
  -- afresh: sparse traffic says nothing about the server's limit, and a fleet's processes
  -- start and stop at different times.
  if now - num('last_seen', NEG) > GAP then
    put('mstart', now)
    put('mbase', num('successes', 0))
  end
  put('last_seen', now)
  put('demand', demand(start) + 1 / TAU)
  put('demand_at', math.max(num('demand_at', NEG), start))
  return start - now
end
local cap, ceiling, initial = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ceiling and ceiling > 0 and not num('rate', nil) then put('rate', ceiling) end
if ceiling and ceiling <= 0 then ceiling = nil end
redis.call('PEXPIRE', state, 86400000)
"""

# ARGV: cap, ceiling (0: none), initial window, mode, lease id, lease ttl, epoch.
# Answers {granted (0/1), delay (string), epoch (string)}.
ACQUIRE = (
    PRELUDE
    + """
local mode = ARGV[4]
if mode == 'acquire' then
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  local window = num('window', initial)
  if redis.call('ZCARD', leases) >= math.min(window, cap) then
    if window < cap then put('held', 1) end
    return {0, '0', fmt(num('epoch', 0))}
  end
  redis.call('ZADD', leases, now + tonumber(ARGV[6]), ARGV[5])
  redis.call('PEXPIRE', leases, 86400000)
  return {1, fmt(reserve()), fmt(num('epoch', 0))}
end
-- recheck: a request slept until its instant; book again if a 429 cut or paused meanwhile
local epoch = num('epoch', 0)
if tonumber(ARGV[7]) == epoch and now >= num('paused_until', NEG) then
  return {1, '0', fmt(epoch)}
end
return {1, fmt(reserve()), fmt(num('epoch', 0))}
"""
)

# ARGV: cap, ceiling, initial window, then ops: 'r<lease id>' release, 's' success,
# 'l<seconds>' 429 with that Retry-After, 'l' 429 without one. Answers {rate or '', epoch}.
REPORT = (
    PRELUDE
    + """
local function success()
  local successes = num('successes', 0) + 1
  put('successes', successes)
  local served_rate = num('srate', 0) * math.exp(-math.max(0, now - num('srate_at', now)) / TAU)
  served_rate = served_rate + 1 / TAU
  put('srate', served_rate)
  put('srate_at', now)
  local window = num('window', initial)
  if window < cap then put('window', window + 1) end
  local old, cut = num('rate', nil), num('cut_rate', nil)
  if not old or not cut then return end
  local step
  if num('learning', 0) == 1 then
    -- The first rate was measured over a fraction of a second (while a fleet starts, on a busy
    -- machine): grow 25 % per second until the next 429 measures it properly.
    step = LEARN * old * old
  elseif old < cut then
    step = RECOVERY * cut
  else
    step = RECOVERY * cut / 4 + PROBE * (old - cut)
  end
  local top = math.max(demand(now) * 1.25, cut * DECREASE, MIN_RATE)
  if num('learning', 0) == 1 then
    -- Grow only ahead of what actually gets answered: a fleet short of CPU sends below its
    -- pace, and a pace far above it would burst into the server's limit when CPU comes back.
    top = math.min(top, 1.5 * served_rate + 2)
  end
  if ceiling then top = math.min(top, ceiling) end
  put('rate', math.min(old + step / old, math.max(top, old)))
end
local function limited(retry_after)
  put('rate_limited', num('rate_limited', 0) + 1)
  if retry_after and retry_after > 0 then
    put('paused_until', math.max(num('paused_until', NEG), now + retry_after))
  end
  local last_cut = num('last_cut', nil)
  local first = last_cut == nil
  local since = math.huge
  if not first then since = now - last_cut end
  if since < 0 then since = math.huge end
  local span = now - num('mstart', POS)
  local served = num('successes', 0) - num('mbase', 0)
  local measured = math.huge
  if span > 0 then measured = math.max(served, 1) / span else span = 0 end
  local rate = num('rate', nil)
  if rate == nil and served < MIN_SERVED then return end
  local target
  if first or since >= CUT_GUARD or rate == nil then
    if rate == nil then
      target = measured
    elseif served >= MIN_SERVED then
      target = math.min(rate, measured)
    else
      target = rate
    end
    if num('held', 0) == 0 then target = target * DECREASE end
    put('held', 0)
  elseif rate * span >= MIN_SERVED and rate > OVERSHOOT * measured then
    target = measured
  else
    return
  end
  if target == math.huge then target = demand(now) * DECREASE end
  if first then put('learning', 1) else put('learning', 0) end
  put('last_cut', now)
  -- What gets through is measured from the moment sending resumes: answers to requests sent
  -- before the cut, and the pause itself, say nothing about the new rate.
  put('mstart', math.max(now, num('paused_until', NEG)))
  put('mbase', num('successes', 0))
  put('epoch', num('epoch', 0) + 1)
  local new = math.max(MIN_RATE, target)
  put('rate', new)
  put('cut_rate', new / DECREASE)
  put('next', math.max(now, num('paused_until', NEG)))
end
for i = 4, #ARGV do
  local op = ARGV[i]
  local kind = string.sub(op, 1, 1)
  if kind == 'r' then
    redis.call('ZREM', leases, string.sub(op, 2))
  elseif kind == 's' then
    success()
  elseif kind == 'l' then
    limited(tonumber(string.sub(op, 2)))
  end
end
local rate = num('rate', nil)
return {rate and fmt(rate) or '', fmt(num('epoch', 0))}
"""
)

# KEYS: leases. ARGV: ttl, lease ids. Pushes the expiry of leases still held (they are alive).
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i])
end
return 1
"""
