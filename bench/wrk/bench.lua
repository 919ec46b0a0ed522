-- The one wrk script every system is measured with. Environment:
--   BENCH_BODY     path of the JSON request body to POST (required)
--   BENCH_PATH     the URL path (default /v1/chat/completions)
--   BENCH_BODY_ALT optional second body: requests alternate between the two (the soak mixes stream/JSON)
--   BENCH_DELAY_MS optional pause before each request on a connection (moderate, not saturating, load)
--   BENCH_IDS_DIR  optional folder: each thread appends the X-Request-Id of every response it gets
-- done() prints one JSON line, "BENCH_RESULT {...}", which gateway_overhead.py parses.

local function slurp(path)
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   return data
end

local headers = {
   ["Content-Type"] = "application/json",
   -- LiteLLM refuses requests without its master key; the other systems ignore the header.
   ["Authorization"] = "Bearer sk-bench-master-key",
}
local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local bodies = { slurp(os.getenv("BENCH_BODY")) }
local alt = os.getenv("BENCH_BODY_ALT")
if alt and alt ~= "" then
   bodies[2] = slurp(alt)
end
local requests_ = {}
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local ids_dir = os.getenv("BENCH_IDS_DIR")
local counter = 0
local ids_file = nil
local threads_made = 0

function setup(thread)
   threads_made = threads_made + 1
   thread:set("thread_no", threads_made)
end

function init(args)
   -- Formatted here, not at load time: wrk.host (the Host header HTTP/1.1 requires) is set only by now.
   headers["Host"] = wrk.host .. ":" .. tostring(wrk.port)
   for i, body in ipairs(bodies) do
      requests_[i] = wrk.format("POST", path, headers, body)
   end
   if ids_dir and ids_dir ~= "" then
      ids_file = assert(io.open(ids_dir .. "/ids-" .. tostring(thread_no) .. ".txt", "w"))
      ids_file:setvbuf("line") -- wrk exits without closing thread states: never leave ids in a buffer
   end
end

function request()
   counter = counter + 1
   return requests_[(counter % #requests_) + 1]
end

if delay_ms > 0 then
   function delay()
      return delay_ms
   end
end

if ids_dir and ids_dir ~= "" then
   function response(status, hdrs, body)
      local id = hdrs["X-Request-Id"] or hdrs["x-request-id"]
      if id and status < 300 then
         ids_file:write(id, "\n")
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.max, latency.mean))
end
