-- wrk script: GET /v1/identities/<identity> cycling over the identities the load generator
-- enrolled. Usage: wrk -s lookups.lua ... https://127.0.0.1:PORT -- <run_id> <count>
local run_id, count, i = "0", 1, 0
function init(args)
  run_id = args[1] or run_id
  count = tonumber(args[2] or "1")
  i = math.random(0, count - 1)
end
function request()
  i = (i + 1) % count
  return wrk.format("GET", "/v1/identities/load" .. i .. "." .. run_id .. "@bench.example")
end
