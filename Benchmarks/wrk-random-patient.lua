-- Reads a random patient among the PATIENTS that osmose-keys-bench seeded (ids
-- 00000000-0000-4000-8000-<index in hex>), pausing DELAY_MS between requests on
-- each connection, so that N connections offer about N * 1000 / DELAY_MS requests
-- per second. Responses other than 200 are counted in wrk's "Non-2xx" line.
local patients = tonumber(os.getenv("PATIENTS") or "1")
local pause = tonumber(os.getenv("DELAY_MS") or "20")
math.randomseed(os.time())
function request()
    return wrk.format("GET", string.format("/v1/patients/00000000-0000-4000-8000-%012x", math.random(0, patients - 1)))
end
function delay()
    return pause
end
