-- wrk script for bench/serve.py: the same request loop for both endpoints, one JSON summary line.
--
-- wrk ... -s bench/serve_wrk.lua URL -- <mode> <users> <t0> <step> <threads>
--   mode    decide: POST /v1/decide {"user_id": "u<random 0..users-1>", "now": <clock>}
--           ping:   GET /v1/ping (the bare baseline; same Lua request/response path)
--           trip:   GET /bench/round-trip (the bare answer after one Redis round trip: bench/trip_app.py)
--   t0      the first decision's `now` (epoch s); every request moves the clock on by `step`
--           seconds, interleaved over threads, so a user drawn twice is rarely inside the
--           minimum gap of its previous push and the guardrails refuse little
-- The done() line starts with BENCH_JSON; latencies are microseconds.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  users = tonumber(args[2])
  t0 = tonumber(args[3])
  step = tonumber(args[4])
  nthreads = tonumber(args[5])
  math.randomseed(os.time() * 97 + tid)
  n, sent, non2xx, last_now = 0, 0, 0, 0
  reasons = {}
  ping_req = wrk.format("GET", mode == "trip" and "/bench/round-trip" or "/v1/ping")
  headers = {["Content-Type"] = "application/json"}
end

function request()
  if mode ~= "decide" then return ping_req end
  local now = t0 + (n * nthreads + tid) * step
  n = n + 1
  last_now = now
  local body = string.format('{"user_id":"u%d","now":%d}', math.random(0, users - 1), now)
  return wrk.format("POST", "/v1/decide", headers, body)
end

function response(status, hdrs, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif mode == "decide" then
    if string.find(body, '"send":true', 1, true) then sent = sent + 1 end
    local r = string.match(body, '"reason":"([%w_]+)"')
    if r then reasons[r] = (reasons[r] or 0) + 1 end
  end
end

local function encode_reasons(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = k .. "=" .. v end
  return table.concat(parts, ",")
end

function done(summary, latency, requests)
  local sent_all, non2xx_all, max_now, mix = 0, 0, 0, {}
  for _, thread in ipairs(threads) do
    sent_all = sent_all + thread:get("sent")
    non2xx_all = non2xx_all + thread:get("non2xx")
    max_now = math.max(max_now, thread:get("last_now"))
    for k, v in pairs(thread:get("reasons")) do mix[k] = (mix[k] or 0) + v end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"non2xx":%d,"sent":%d,"max_now":%d,"reasons":"%s"}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    non2xx_all, sent_all, max_now, encode_reasons(mix)))
end
