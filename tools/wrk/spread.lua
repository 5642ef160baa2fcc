-- wrk script: requests spread over N distinct URLs, for a cache array behind a balancer
-- that hashes URLs (tools/cluster/), where one URL would reach one node only.
--
--   wrk -s tools/wrk/spread.lua http://127.0.0.1:3128 -- http://127.0.0.1:8080/obj 300
--   wrk -s tools/wrk/spread.lua http://127.0.0.1:8081 -- http://127.0.0.1:8080/obj 300 origin
--
-- Request i goes to TARGET/(i mod N) (N defaults to 300), in absolute form with Host set
-- to the target's authority, as to a forward proxy; with a third argument `origin`, in
-- origin form, as to a reverse proxy (nginx proxy_cache, Varnish). The N requests are
-- built once per thread in init and sent in turn, so the script costs wrk little.

local requests = {}
local next_one = 1

function init(args)
  local target = args[1]
  local authority = target and target:match("^http://([^/]+)")
  local n = tonumber(args[2] or "300")
  if not authority or not n or n < 1 then
    io.stderr:write("usage: wrk -s spread.lua http://PROXY:PORT -- http://HOST:PORT/prefix [N] [origin]\n")
    os.exit(2)
  end
  local origin_form = args[3] == "origin"
  local path_prefix = target:match("^http://[^/]+(/.*)$") or ""
  for i = 0, n - 1 do
    local url = target .. "/" .. i
    if origin_form then
      url = path_prefix .. "/" .. i
    end
    requests[#requests + 1] = wrk.format("GET", url, { Host = authority })
  end
end

function request()
  local r = requests[next_one]
  next_one = next_one % #requests + 1
  return r
end
