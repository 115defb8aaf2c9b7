-- wrk script for bench_http.py: send pre-built raw requests, each at most once.
--
-- Each wrk thread reads its own file of length-prefixed records ("<bytes>\n<request>") written by
-- bench/workload.py (RECORDS is the common prefix; thread i reads RECORDS.i). When a thread has
-- sent all its records it starts again from the first and counts the wrap, which bench_http.py
-- reports as a flaw (replayed deliveries are cheaper than new ones). done() prints one JSON line.

local threads = {}
local prefix = os.getenv("RECORDS")

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(prefix .. "." .. wrk.thread:get("id"), "rb"))
  records = {}
  while true do
    local size = file:read("*l")
    if not size then break end
    records[#records + 1] = file:read(tonumber(size))
  end
  file:close()
  index = 0
  wraps = 0
  sent = 0
end

function request()
  index = index + 1
  if index > #records then
    index = 1
    wraps = wraps + 1
    wrk.thread:set("wraps", wraps)
  end
  sent = sent + 1
  wrk.thread:set("sent", sent)
  return records[index]
end

function done(summary, latency, requests)
  local wraps, sent = 0, 0
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("wraps") or 0)
    sent = sent + (thread:get("sent") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "mean_us": %.1f, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "wraps": %d, "sent": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, wraps, sent))
end
