-- wrk script: POST /v1/credentials with pre-signed requests, one per line of the file the
-- load generator wrote (--write-requests). Each wrk thread takes every T-th line, so no token
-- is sent twice while lines last; answers other than 201 are counted and printed.
-- Usage: wrk -t2 -c64 -d8s --latency -s issue.lua https://127.0.0.1:PORT -- <file> <wrk threads>
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  bodies = {}
  local threads_total = tonumber(args[2] or "1")
  local n = 0
  for line in io.lines(args[1]) do
    if n % threads_total == id then table.insert(bodies, line) end
    n = n + 1
  end
  next_body, errors = 1, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  local body = bodies[next_body]
  next_body = next_body + 1
  if body == nil then body = "{}" end
  return wrk.format(nil, "/v1/credentials", nil, body)
end
function response(status, headers, body)
  if status ~= 201 then errors = errors + 1 end
end
function done(summary, latency, requests)
  local errors_total = 0
  for _, thread in ipairs(threads) do errors_total = errors_total + thread:get("errors") end
  io.write(string.format("non-201 answers: %d\n", errors_total))
end
