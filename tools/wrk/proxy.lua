-- wrk script: load-test an origin THROUGH a forward proxy such as larder.
--
--   wrk -s tools/wrk/proxy.lua http://127.0.0.1:3128 -- http://127.0.0.1:8080/size/1024
--
-- wrk connects to the proxy named on its command line and sends every request with the
-- target after `--` in absolute form ("GET http://127.0.0.1:8080/size/1024 HTTP/1.1") and
-- Host set to that target's authority (wrk would otherwise send the proxy's address).
-- The request is built once per thread in init: there is no request()/response()
-- callback, so the script costs wrk nothing per request.
--
-- A second argument after the target is sent as the Proxy-Authorization field's value,
-- for a larder with --auth-file:
--
--   wrk -s tools/wrk/proxy.lua http://127.0.0.1:3128 -- http://127.0.0.1:8080/ "Basic dTpw"

function init(args)
  local target = args[1]
  local authority = target and target:match("^http://([^/]+)")
  if not authority then
    io.stderr:write("usage: wrk -s proxy.lua http://PROXY:PORT -- http://HOST:PORT/path\n")
    os.exit(2)
  end
  if not target:match("^http://[^/]+/") then
    target = target .. "/"
  end
  wrk.path = target
  wrk.headers["Host"] = authority
  if args[2] then
    wrk.headers["Proxy-Authorization"] = args[2]
  end
end
