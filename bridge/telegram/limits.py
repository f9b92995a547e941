"""Rate limits for sends to Telegram: global, per chat, per group, with 429 penalties and adaptive slow-down.

Telegram allows a bot about 30 messages a second overall, about 1 a second to one chat and 20 a minute to one
group; above that it answers 429 with a retry_after. `RateLimiter.acquire(chat_id)` waits until a send to that
chat fits every applicable bucket and returns how long it waited; `penalize()` records a 429.

Each bucket is kept as a sliding-window log, the strict form of a token bucket: at most `burst` sends in any
window of `burst / rate` seconds (plus a small safety margin). A log, unlike the single "theoretical arrival
time" of GCRA, lets a send be reserved in the future (a chat waiting for its own turn) without holding back
other chats' earlier sends through the shared global bucket. Reservations are made atomically and the caller
then sleeps, so many concurrent tasks never poll or stampede: each gets its own slot.

Two implementations share these semantics: `LocalRateLimiter` (one process, asyncio) and `RedisRateLimiter`
(any number of worker processes on any number of machines, one Lua script and one round trip per acquire).
"""

from __future__ import annotations

import abc
import asyncio
import math
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

# A chat penalized again and again never drops below this share of its configured rate: enough to keep
# draining its backlog, low enough that Telegram stops answering 429.
ADAPTIVE_FLOOR = 0.1
# After a 429 the rate comes back by this share of the configured rate per minute without a new 429,
# so a halved chat is back at full speed five minutes later.
ADAPTIVE_RECOVERY_PER_MINUTE = 0.1
# The safety margin never widens a window by more than this share of it, so it never costs more than half the
# configured rate: at rates far above Telegram's (an operator turning the limits off, 100/s per chat) a fixed
# 50 ms margin would itself become the limit (17/s), and there is no Telegram limit left for it to protect. Up to
# 20/s per chat the default margin applies whole.
MARGIN_MAX_SHARE = 1.0
# Idle buckets of the local limiter are dropped at most this often (seconds), so memory follows live chats.
_SWEEP_INTERVAL = 60.0


@dataclass(frozen=True)
class RateLimits:
    """The BridgeSettings rate knobs, as plain values.

    A burst of None means "one window's worth": the global bucket then allows `global_per_second` sends in
    any second, a group `per_group_per_minute` in any minute. Per chat the default burst is 1: Telegram
    tolerates short bursts, but counts sends per chat in any one-second window.
    `margin_seconds` widens every window: two sends reserved exactly one window apart can reach Telegram
    closer together (sends queued behind a burst, network and event-loop jitter) and would then count in one
    window. Measured against the emulator on loopback, a burst compressed gaps by up to 26 ms; the default
    absorbs 50 ms, at a cost of about 5% of the per-chat and global rates (0.1% of the per-group one). A window
    is widened by at most MARGIN_MAX_SHARE of itself (short windows are far above Telegram's limits).
    """

    global_per_second: float = 30.0
    per_chat_per_second: float = 1.0
    per_group_per_minute: float = 20.0
    adaptive: bool = True
    global_burst: int | None = None
    per_chat_burst: int = 1
    per_group_burst: int | None = None
    margin_seconds: float = 0.05

    def __post_init__(self) -> None:
        for name in ("global_per_second", "per_chat_per_second", "per_group_per_minute"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("global_burst", "per_chat_burst", "per_group_burst"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.margin_seconds < 0:
            raise ValueError("margin_seconds must not be negative")

    def buckets(self, chat_id: int) -> tuple[_Bucket, ...]:
        """The per-chat buckets that apply to `chat_id`: a group (negative id) has both the chat and the group rule."""
        chat = _Bucket(self.per_chat_per_second, self.per_chat_burst)
        if chat_id >= 0:
            return (chat,)
        group_burst = self.per_group_burst or max(1, math.floor(self.per_group_per_minute))
        return chat, _Bucket(self.per_group_per_minute / 60.0, group_burst)

    def global_bucket(self) -> _Bucket:
        return _Bucket(
            self.global_per_second, self.global_burst or max(1, math.floor(self.global_per_second))
        )


@dataclass(frozen=True)
class _Bucket:
    rate: float  # sends per second at full speed
    burst: int

    def window(self, factor: float, margin: float) -> float:
        """Seconds in which at most `burst` sends fit, at `factor` times the configured rate."""
        return self.burst / (self.rate * factor) + min(margin, MARGIN_MAX_SHARE * self.burst / self.rate)


@dataclass
class LimiterStats:
    """What a limiter has done since it was built (this process only)."""

    acquires: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    penalties: int = 0
    global_penalties: int = 0


class RateLimiter(abc.ABC):
    """Waits before sends so that Telegram's flood limits are never reached.

    Contract: `acquire` never raises for rate reasons (it waits instead); Redis errors from
    `RedisRateLimiter` propagate as `redis.RedisError`, since sending blind would risk the flood limit.
    """

    def __init__(self, limits: RateLimits | None = None) -> None:
        self.limits = limits or RateLimits()
        self.stats = LimiterStats()

    @abc.abstractmethod
    async def acquire(self, chat_id: int) -> float:
        """Wait until a send to `chat_id` is allowed by every applicable bucket; return the seconds waited."""

    @abc.abstractmethod
    async def penalize(self, chat_id: int, retry_after: float, *, global_: bool = False) -> None:
        """Record a 429: nothing goes to `chat_id` (to any chat when `global_`) for `retry_after` seconds.

        With `limits.adaptive`, the rate of that chat (or the global rate) is also halved, down to
        ADAPTIVE_FLOOR of the configured rate, and recovers by ADAPTIVE_RECOVERY_PER_MINUTE of it per minute.
        A second 429 while a penalty is still running does not halve again: sends reserved before the first
        429 answer with one too, and they say nothing new about the rate.
        """

    @abc.abstractmethod
    async def factor(self, chat_id: int | None = None) -> float:
        """The current adaptive share (ADAPTIVE_FLOOR..1) of the configured rate for `chat_id` (None: global)."""

    def update(self, limits: RateLimits) -> None:
        """Apply new rates from the next acquire on (live tuning); reservations already made stand."""
        self.limits = limits

    def _count(self, waited: float) -> float:
        self.stats.acquires += 1
        if waited > 0:
            self.stats.waits += 1
            self.stats.wait_seconds += waited
        return waited

    def _count_penalty(self, global_: bool) -> None:
        if global_:
            self.stats.global_penalties += 1
        else:
            self.stats.penalties += 1


def _violation(times: list[float], t: float, window: float, burst: int) -> float | None:
    """None if a send at `t` keeps every `window`-long span at <= `burst` sends of sorted `times`.

    Otherwise the earliest later time worth trying: the end of the first span that overflows, since every
    time before it still falls inside that span.
    """
    lo, hi = bisect_right(times, t - window), bisect_left(times, t + window)
    # Fewer than `burst` others anywhere near t: no span can overflow (the common, cheap case).
    if hi - lo < burst:
        return None
    pts = times[lo:hi]
    insort(pts, t)
    end = 0
    for start_index, start in enumerate(pts):
        if start > t:
            break
        while end < len(pts) and pts[end] < start + window:
            end += 1
        if end - start_index > burst:
            return start + window
    return None


@dataclass
class _Scope:
    """One chat's (or the whole bot's) log of reserved send times, penalty and adaptive factor."""

    times: list[float] = field(default_factory=list)
    penalty_until: float = 0.0
    factor: float = 1.0
    factor_at: float = 0.0

    def current_factor(self, now: float) -> float:
        recovered = self.factor + ADAPTIVE_RECOVERY_PER_MINUTE * (now - self.factor_at) / 60.0
        return min(1.0, recovered)

    def trim(self, now: float, keep: float) -> None:
        del self.times[: bisect_left(self.times, now - keep)]

    def idle(self, now: float) -> bool:
        return not self.times and self.penalty_until <= now and self.current_factor(now) >= 1.0


class LocalRateLimiter(RateLimiter):
    """In-process limiter for one event loop (no locks needed: reservations are made without awaiting).

    `clock` is injectable for tests; it must be monotonic and in seconds.
    """

    def __init__(
        self, limits: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(limits)
        self._clock = clock
        self._global = _Scope()
        self._chats: dict[int, _Scope] = {}
        self._last_sweep = clock()

    async def acquire(self, chat_id: int) -> float:
        waited = 0.0
        while True:
            at = self._reserve(chat_id)
            delay = at - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
                waited += delay
            # A 429 that arrived while we slept cancelled our slot if it fell inside the penalty (see
            # penalize): take a new one.
            if self._blocked_until(chat_id) <= at:
                return self._count(waited)

    def _blocked_until(self, chat_id: int) -> float:
        chat = self._chats.get(chat_id)
        return max(self._global.penalty_until, chat.penalty_until if chat else 0.0)

    def _reserve(self, chat_id: int) -> float:
        """Take the earliest slot for `chat_id` that fits every bucket; return its (clock) time."""
        now = self._clock()
        self._sweep(now)
        limits, margin = self.limits, self.limits.margin_seconds
        chat = self._chats.setdefault(chat_id, _Scope(factor_at=now))
        chat_factor = chat.current_factor(now) if limits.adaptive else 1.0
        global_factor = self._global.current_factor(now) if limits.adaptive else 1.0
        checks = [(chat, b.window(chat_factor, margin), b.burst) for b in limits.buckets(chat_id)]
        glob = limits.global_bucket()
        checks.append((self._global, glob.window(global_factor, margin), glob.burst))
        # A group's log serves two windows (1 s and 60 s): trim it to the longer one.
        chat.trim(now, max(window for scope, window, _ in checks if scope is chat))
        self._global.trim(now, checks[-1][1])

        t = max(now, chat.penalty_until, self._global.penalty_until)
        restart = True
        while restart:
            restart = False
            for scope, window, burst in checks:
                later = _violation(scope.times, t, window, burst)
                if later is not None:
                    t, restart = later, True
                    break
        insort(chat.times, t)
        insort(self._global.times, t)
        return t

    async def penalize(self, chat_id: int, retry_after: float, *, global_: bool = False) -> None:
        now = self._clock()
        scope = self._global if global_ else self._chats.setdefault(chat_id, _Scope(factor_at=now))
        until = now + max(0.0, retry_after)
        if self.limits.adaptive and scope.penalty_until <= now:
            scope.factor = max(ADAPTIVE_FLOOR, scope.current_factor(now) / 2)
            scope.factor_at = now
        scope.penalty_until = max(scope.penalty_until, until)
        # Slots inside the penalty are doomed: their owners wake, see the penalty and reserve again.
        del scope.times[bisect_right(scope.times, now) : bisect_left(scope.times, until)]
        self._count_penalty(global_)

    async def factor(self, chat_id: int | None = None) -> float:
        now = self._clock()
        scope = self._global if chat_id is None else self._chats.get(chat_id)
        return scope.current_factor(now) if scope else 1.0

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < _SWEEP_INTERVAL:
            return
        self._last_sweep = now
        longest = max(b.window(ADAPTIVE_FLOOR, self.limits.margin_seconds) for b in self.limits.buckets(-1))
        for chat_id, scope in list(self._chats.items()):
            scope.trim(now, longest)
            if scope.idle(now):
                del self._chats[chat_id]


# One atomic check-and-reserve. Times are microseconds of the Redis server's clock (TIME), so workers on
# several machines agree. The search mirrors LocalRateLimiter._reserve and _violation.
_ACQUIRE_LUA = """
local g_log, g_pen, g_fac, c_log, c_pen, c_fac, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local adaptive = tonumber(ARGV[1]) == 1
local margin = tonumber(ARGV[2])
local floor_, recovery, share = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])

-- microseconds in which `burst` sends fit at `rate` times f, plus the margin (at most `share` of the window)
local function window(rate, burst, f)
  local interval = burst / rate * 1000000
  return interval / f + math.min(margin, share * interval)
end

local function factor(key)
  if not adaptive then return 1 end
  local v = redis.call('HMGET', key, 'f', 'at')
  if not v[1] then return 1 end
  return math.min(1, math.max(floor_, tonumber(v[1]) + recovery * (now - tonumber(v[2]))))
end

local function penalty(key)
  return tonumber(redis.call('GET', key) or '0') or 0
end

-- checks: {log index, window, burst}; logs: sorted arrays of reserved times
local gf, cf = factor(g_fac), factor(c_fac)
local checks = {{1, window(tonumber(ARGV[6]), tonumber(ARGV[7]), gf), tonumber(ARGV[7])}}
local keep = {checks[1][2], 0}
local i = 8
while ARGV[i] do
  local w = window(tonumber(ARGV[i]), tonumber(ARGV[i + 1]), cf)
  table.insert(checks, {2, w, tonumber(ARGV[i + 1])})
  if w > keep[2] then keep[2] = w end
  i = i + 2
end

local logs = {}
for n, key in ipairs({g_log, c_log}) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.0f', now - keep[n]))
end

-- The sorted reserved times of log n, read only when a check needs them.
local function log(n)
  if not logs[n] then
    local raw = redis.call('ZRANGE', n == 1 and g_log or c_log, 0, -1, 'WITHSCORES')
    local arr = {}
    for j = 2, #raw, 2 do arr[#arr + 1] = tonumber(raw[j]) end
    logs[n] = arr
  end
  return logs[n]
end

local function violation(n, t, window, burst)
  local key = n == 1 and g_log or c_log
  local near = redis.call('ZCOUNT', key, '(' .. string.format('%.17g', t - window), '(' .. string.format('%.17g', t + window))
  if near < burst then return nil end -- no span near t can overflow (the common, cheap case)
  local pts = {}
  local placed = false
  for _, x in ipairs(log(n)) do
    if x > t - window and x < t + window then
      if not placed and x > t then pts[#pts + 1] = t; placed = true end
      pts[#pts + 1] = x
    end
  end
  if not placed then pts[#pts + 1] = t end
  local e = 1
  for s = 1, #pts do
    local start = pts[s]
    if start > t then break end
    while e <= #pts and pts[e] < start + window do e = e + 1 end
    if e - s > burst then return start + window end
  end
  return nil
end

local t = math.max(now, penalty(g_pen), penalty(c_pen))
local restart = true
while restart do
  restart = false
  for _, c in ipairs(checks) do
    local later = violation(c[1], t, c[2], c[3])
    if later then t = later; restart = true; break end
  end
end

local member = string.format('%.0f:%d', t, redis.call('INCR', seq_key))
redis.call('PEXPIRE', seq_key, 86400000)
for n, key in ipairs({g_log, c_log}) do
  redis.call('ZADD', key, t, member)
  redis.call('PEXPIRE', key, math.ceil((t - now + keep[n]) / 1000) + 1000)
end
return math.ceil(t - now)
"""

# Record a 429. ARGV: global (1/0), retry_after_us, adaptive (1/0), floor, recovery per us.
_PENALIZE_LUA = """
local log, pen, fac = KEYS[1], KEYS[2], KEYS[3]
local retry_us, adaptive = tonumber(ARGV[1]), tonumber(ARGV[2]) == 1
local floor_, recovery = tonumber(ARGV[3]), tonumber(ARGV[4])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local current = tonumber(redis.call('GET', pen) or '0') or 0
if adaptive and current <= now then
  local v = redis.call('HMGET', fac, 'f', 'at')
  local f = 1
  if v[1] then f = math.min(1, tonumber(v[1]) + recovery * (now - tonumber(v[2]))) end
  f = math.max(floor_, f / 2)
  redis.call('HSET', fac, 'f', tostring(f), 'at', string.format('%.0f', now))
  -- the factor key lives exactly as long as the recovery takes
  redis.call('PEXPIRE', fac, math.ceil((1 - f) / recovery / 1000) + 1000)
end
local blocked = math.max(current, now + retry_us)
if blocked > now then
  redis.call('SET', pen, string.format('%.0f', blocked), 'PX', math.ceil((blocked - now) / 1000))
end
-- slots inside the penalty are doomed: this process's waiters reserve again, others meet the 429
redis.call('ZREMRANGEBYSCORE', log, '(' .. string.format('%.0f', now), '(' .. string.format('%.0f', blocked))
return 1
"""


class RedisRateLimiter(RateLimiter):
    """The same limits shared by every worker on one Redis: one EVALSHA (one round trip) per acquire.

    Keys live under `prefix`: `{prefix}:global:{log,penalty,factor}`, `{prefix}:chat:<id>:{log,penalty,factor}`
    and `{prefix}:seq`; every key carries a TTL, so a chat's keys vanish once it has been idle for a window.
    Rates come from this process's `limits`, so every worker should get the same `update()`.
    """

    def __init__(self, redis: Redis, limits: RateLimits | None = None, *, prefix: str = "cct:rate") -> None:
        super().__init__(limits)
        self.redis = redis
        self.prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._penalize = redis.register_script(_PENALIZE_LUA)
        # Penalties this process recorded, in its own monotonic clock, numbered: a waiter whose slot a later
        # 429 cancelled learns it without another round trip. Waiters in other processes send into the
        # penalty and meet the 429 they would have met anyway.
        self._local_penalties: dict[int | None, tuple[float, int]] = {}
        self._penalty_seq = 0

    def _keys(self, scope: str) -> list[str]:
        return [
            f"{self.prefix}:{scope}:log",
            f"{self.prefix}:{scope}:penalty",
            f"{self.prefix}:{scope}:factor",
        ]

    async def acquire(self, chat_id: int) -> float:
        limits = self.limits
        glob = limits.global_bucket()
        args: list[float | int] = [
            int(limits.adaptive),
            limits.margin_seconds * 1e6,
            ADAPTIVE_FLOOR,
            ADAPTIVE_RECOVERY_PER_MINUTE / 60e6,
            MARGIN_MAX_SHARE,
            glob.rate,
            glob.burst,
        ]
        for bucket in limits.buckets(chat_id):
            args += [bucket.rate, bucket.burst]
        keys = [*self._keys("global"), *self._keys(f"chat:{chat_id}"), f"{self.prefix}:seq"]
        waited = 0.0
        while True:
            seq = self._penalty_seq
            delay = int(await self._acquire(keys=keys, args=args)) / 1e6
            at = time.monotonic() + delay
            if delay > 0:
                await asyncio.sleep(delay)
                waited += delay
            if not self._cancelled(chat_id, since=seq, at=at):
                return self._count(waited)

    def _cancelled(self, chat_id: int, *, since: int, at: float) -> bool:
        """Whether a penalty recorded here after reservation number `since` covers a slot at `at`."""
        now = time.monotonic()
        for key, (until, _) in list(self._local_penalties.items()):
            if until <= now:
                del self._local_penalties[key]
        return any(
            seq > since and until > at
            for until, seq in (
                self._local_penalties.get(None, (0.0, 0)),
                self._local_penalties.get(chat_id, (0.0, 0)),
            )
        )

    async def penalize(self, chat_id: int, retry_after: float, *, global_: bool = False) -> None:
        retry_after = max(0.0, retry_after)
        scope = "global" if global_ else f"chat:{chat_id}"
        local_key = None if global_ else chat_id
        self._penalty_seq += 1
        until = max(time.monotonic() + retry_after, self._local_penalties.get(local_key, (0.0, 0))[0])
        self._local_penalties[local_key] = (until, self._penalty_seq)
        args = [
            retry_after * 1e6,
            int(self.limits.adaptive),
            ADAPTIVE_FLOOR,
            ADAPTIVE_RECOVERY_PER_MINUTE / 60e6,
        ]
        await self._penalize(keys=self._keys(scope), args=args)
        self._count_penalty(global_)

    async def factor(self, chat_id: int | None = None) -> float:
        scope = "global" if chat_id is None else f"chat:{chat_id}"
        f, at = await self.redis.hmget(f"{self.prefix}:{scope}:factor", ["f", "at"])
        if f is None:
            return 1.0
        seconds, micros = await self.redis.time()
        now = seconds * 1_000_000 + micros
        recovered = float(f) + ADAPTIVE_RECOVERY_PER_MINUTE / 60e6 * (now - float(at))
        return min(1.0, max(ADAPTIVE_FLOOR, recovered))


__all__ = [
    "ADAPTIVE_FLOOR",
    "ADAPTIVE_RECOVERY_PER_MINUTE",
    "MARGIN_MAX_SHARE",
    "LimiterStats",
    "LocalRateLimiter",
    "RateLimiter",
    "RateLimits",
    "RedisRateLimiter",
]
