-- wrk script: POST /api/v1/subscriptions with a unique address per request.
-- Each wrk thread has its own Lua state; setup() gives each one a distinct id.
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  run_id = args[1] or "run"
  counter = 0
end

function request()
  counter = counter + 1
  local body = string.format('{"email": "load-%s-%d-%d@example.org", "language": "fr"}',
                             run_id, thread_id, counter)
  return wrk.format("POST", "/api/v1/subscriptions",
                    {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH-RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
