-- wrk.lua - request generation for scripts/bench.sh.
--
-- Environment:
--   BENCH_MODE     fixed: always the URL on wrk's command line (wrk's
--                  cheapest path: no request() hook at all)
--                  miss:  BENCH_MISS_PREFIX .. "<run id>-<n>", a path never
--                  asked before, so every request is a cache miss
--                  mix:   BENCH_HIT_PCT percent of the requests go to one of
--                  BENCH_HOT_PREFIX .. 1..BENCH_HOT_N (warmed beforehand),
--                  the others are misses as above
--   BENCH_MISS_PREFIX, BENCH_HOT_PREFIX, BENCH_HOT_N (1000), BENCH_HIT_PCT (90)
--
-- done() prints one line that bench.sh parses:
--   BENCH requests duration_us p50_us p99_us non2xx connect read write timeout

local mode = os.getenv("BENCH_MODE") or "fixed"
local miss_prefix = os.getenv("BENCH_MISS_PREFIX") or "/miss/"
local hot_prefix = os.getenv("BENCH_HOT_PREFIX") or "/hot/"
local hot_n = tonumber(os.getenv("BENCH_HOT_N") or "1000")
local hit_pct = tonumber(os.getenv("BENCH_HIT_PCT") or "90")

local run_id
local seq = 0

function init(args)
   -- a run id of its own per run and per thread: misses stay misses even
   -- when the same memcached served an earlier run
   math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6) % 1000)
   run_id = string.format("%x%04x", os.time(), math.random(0, 0xffff))
end

local function next_miss()
   seq = seq + 1
   return wrk.format("GET", miss_prefix .. run_id .. "-" .. seq)
end

if mode == "miss" then
   request = next_miss
elseif mode == "mix" then
   request = function()
      if math.random(100) > hit_pct then
         return next_miss()
      end
      return wrk.format("GET", hot_prefix .. math.random(hot_n))
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(99),
      e.status, e.connect, e.read, e.write, e.timeout))
end
