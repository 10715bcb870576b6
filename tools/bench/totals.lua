-- wrk done() hook: one machine-readable "totals" line, latencies in
-- microseconds, socket errors by kind and non-2xx/3xx (wrk's "status").
-- Optional: a "Connection: close" header is given with wrk -H, not here.
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("totals requests=%d duration_us=%d " ..
	    "connect=%d read=%d write=%d timeout=%d non2xx=%d " ..
	    "p50_us=%d p99_us=%d max_us=%d\n",
	    summary.requests, summary.duration, e.connect, e.read, e.write,
	    e.timeout, e.status, latency:percentile(50),
	    latency:percentile(99), latency.max))
end
