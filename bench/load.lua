-- wrk script for bench/load.py: cycle through presigned deliveries.
--
--   BENCH_RESULT=out.json wrk -t1 -c64 -d20s -s bench/load.lua URL -- REQUESTS_FILE
--
-- REQUESTS_FILE holds one delivery a line: path, TAB, signature header, TAB,
-- the JSON body. Every request is formatted once, in init; request() only
-- hands the next one out (wrapping around when the file runs out, which
-- bench/load.py avoids for omniroute by writing enough of them). done()
-- writes what bench/load.py reads into BENCH_RESULT: counts and the latency distribution.

local requests = {}
local position = 0
issued = 0
wrapped = 0

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   for line in file:lines() do
      local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", path, {
         ["Content-Type"] = "application/json",
         ["X-Omniroute-Signature"] = signature,
      }, body)
   end
   file:close()
end

function request()
   issued = issued + 1
   position = position + 1
   if position > #requests then
      position = 1
      wrapped = wrapped + 1
   end
   return requests[position]
end

local function field(name, value)
   return string.format('"%s": %.3f', name, value)
end

function done(summary, latency, _)
   local issued_total, wrapped_total = 0, 0
   for _, thread in ipairs(threads) do
      issued_total = issued_total + thread:get("issued")
      wrapped_total = wrapped_total + thread:get("wrapped")
   end
   local e = summary.errors
   local parts = {
      field("requests", summary.requests),
      field("duration_us", summary.duration),
      field("issued", issued_total),
      field("wrapped", wrapped_total),
      field("errors_connect", e.connect),
      field("errors_read", e.read),
      field("errors_write", e.write),
      field("errors_status", e.status),
      field("errors_timeout", e.timeout),
      field("p50_us", latency:percentile(50)),
      field("p90_us", latency:percentile(90)),
      field("p99_us", latency:percentile(99)),
      field("p999_us", latency:percentile(99.9)),
      field("max_us", latency.max),
      field("mean_us", latency.mean),
   }
   local out = assert(io.open(os.getenv("BENCH_RESULT"), "w"))
   out:write("{" .. table.concat(parts, ", ") .. "}\n")
   out:close()
end
