-- wrk script of bench/run.py: POST /v1/messages with a JSON body, as the
-- Claude Code client does, rotating over a set of users' session tokens.
--
-- Environment (set by run.py):
--   BENCH_MODE        json | sse | paced | mix (alternate JSON and SSE
--                     requests)
--   BENCH_TOKENS      file with one session token per line
--   BENCH_BODY_JSON   request body file, non-streaming
--   BENCH_BODY_SSE    request body file, "stream": true
--   BENCH_BODY_PACED  request body file, "stream": true, asking the stand-in
--                     to pace its events (mode paced only)
--   BENCH_LIMIT       stop each thread after this many responses (0: run
--                     for wrk's -d duration only; wrk itself still ends
--                     at -d)
--   BENCH_AUTH        0: send no Authorization header
--
-- done() prints one line "BENCH {json}" with the totals and latency
-- percentiles in microseconds (wrk measures until the response's last byte,
-- so for SSE the whole stream).

local mode = os.getenv("BENCH_MODE") or "json"
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
local auth = os.getenv("BENCH_AUTH") ~= "0"

local function slurp(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("*a")
   f:close()
   return s
end

local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
   if #line > 0 then
      tokens[#tokens + 1] = line
   end
end
local bodies = {json = slurp(os.getenv("BENCH_BODY_JSON")),
                sse = slurp(os.getenv("BENCH_BODY_SSE"))}
if mode == "paced" then
   bodies.paced = slurp(os.getenv("BENCH_BODY_PACED"))
end

local nthreads = 0
function setup(thread)
   thread:set("tid", nthreads)
   nthreads = nthreads + 1
end

local reqs, idx, seen = {}, 0, 0

function init(args)
   local kinds = {mode}
   if mode == "mix" then
      kinds = {"json", "sse"}
   end
   for _, tok in ipairs(tokens) do
      for _, k in ipairs(kinds) do
         local h = {["Content-Type"] = "application/json",
                    ["anthropic-version"] = "2023-06-01",
                    ["User-Agent"] = "claude-cli/2.1.328 (external, cli)"}
         if auth then
            h["Authorization"] = "Bearer " .. tok
         end
         if k == "sse" or k == "paced" then
            h["Accept"] = "text/event-stream"
         else
            h["Accept"] = "application/json"
         end
         reqs[#reqs + 1] = wrk.format("POST", wrk.path, h, bodies[k])
      end
   end
   -- threads start at different users
   idx = ((tid or 0) * 7) % #reqs
end

function request()
   idx = idx % #reqs + 1
   return reqs[idx]
end

if limit > 0 then
   function response(status, headers, body)
      seen = seen + 1
      if seen >= limit then
         wrk.thread:stop()
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d,"mean_us":%.1f,"max_us":%d,"p50_us":%d,' ..
      '"p90_us":%d,"p99_us":%d}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency.mean, latency.max, latency:percentile(50),
      latency:percentile(90), latency:percentile(99)))
end
