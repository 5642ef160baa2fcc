-- wrk script: like proxy.lua, but pipelines DEPTH requests (default 16) per write.
--
--   wrk -s tools/wrk/proxy-pipeline.lua http://127.0.0.1:3128 -- http://127.0.0.1:8080/size/1024 [DEPTH]
--
-- The batch of DEPTH absolute-form requests is formatted once per thread in init;
-- request() only hands the same string back, once per batch. wrk counts every response
-- of a batch as one request, and its latency is that of the whole batch.

local batch

function init(args)
  local target = args[1]
  local authority = target and target:match("^http://([^/]+)")
  local depth = tonumber(args[2] or "16")
  if not authority or not depth or depth < 1 or depth ~= math.floor(depth) then
    io.stderr:write("usage: wrk -s proxy-pipeline.lua http://PROXY:PORT -- http://HOST:PORT/path [DEPTH]\n")
    os.exit(2)
  end
  if not target:match("^http://[^/]+/") then
    target = target .. "/"
  end
  local one = wrk.format("GET", target, { Host = authority })
  batch = string.rep(one, depth)
end

function request()
  return batch
end
