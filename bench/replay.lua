-- wrk script: replays pre-signed webhook requests from a file, each one once across all
-- threads (thread i sends requests i, i+T, i+2T, ...), and prints the summary as JSON.
-- Usage: wrk -s replay.lua URL -- REQUEST_FILE THREADS
-- The file holds records "<byte length>\n<raw HTTP request>".

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local stride = tonumber(args[2])
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  mine = {}
  local position, index = 1, 0
  while position <= #data do
    local newline = data:find("\n", position, true)
    local length = tonumber(data:sub(position, newline - 1))
    if index % stride == id then
      mine[#mine + 1] = data:sub(newline + 1, newline + length)
    end
    position = newline + length + 1
    index = index + 1
  end
  cursor = 0
end

function request()
  cursor = cursor + 1
  return mine[((cursor - 1) % #mine) + 1]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
