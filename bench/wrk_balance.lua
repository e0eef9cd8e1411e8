-- bench/wrk_balance.lua - wrk script of bench/api.sh:
--   wrk -s bench/wrk_balance.lua URL -- WALLETS [PREFIX]
-- Every request is GET /balance/<PREFIX><n> with n drawn at random from
-- 0 .. WALLETS-1 (default 1000000, prefix "w": the wallet ids of
-- gen_events), each wrk thread with its own seed. At the end it prints one
-- line "WRKJSON {...}": requests, duration, requests/s, latency
-- percentiles in microseconds, errors (status = non-2xx/3xx answers).

local counter = 0
local threads = {}

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   wallets = tonumber(args[1]) or 1000000
   prefix = args[2] or "w"
   math.randomseed(os.time() + 7919 * (tid or 0))
end

function request()
   return wrk.format("GET", "/balance/" .. prefix .. math.random(0, wallets - 1))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests": %d, "duration_s": %.4f, "per_s": %.1f, "bytes": %d, ' ..
      '"latency_us": {"mean": %.1f, "stdev": %.1f, "p50": %d, "p90": %d, "p99": %d, "p99_9": %d, "max": %d}, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, "threads": %d}\n',
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), summary.bytes,
      latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, #threads))
end
