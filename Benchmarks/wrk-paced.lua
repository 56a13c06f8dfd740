-- Paces each wrk connection to DELAY_MS between requests, so that N connections
-- offer about N * 1000 / DELAY_MS requests per second. wrk's latency figures
-- measure the responses only, not the pause.
local pause = tonumber(os.getenv("DELAY_MS") or "20")
function delay()
    return pause
end
