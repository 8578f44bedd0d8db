package devenv

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// Prober hits a URL every Interval and measures the longest time without a successful answer.
type Prober struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	report  Report
	lastOK  time.Time
	failing bool
}

// Report of a probe run.
type Report struct {
	Requests int
	// Failures counts the failed requests after the first 2xx: before it, nothing was serving
	// yet (a first deployment), and those are BeforeFirstOK.
	Failures      int
	BeforeFirstOK int
	LongestGap    time.Duration // longest time from the last 2xx before a failure to the next 2xx
	Slowest       time.Duration // the slowest 2xx answer: a stall that still answered shows here
	Recovered     bool          // the last probe before Stop answered 2xx
	Bodies        []string      // distinct 2xx bodies, in the order first seen
}

// ProbeTimeout bounds one probe request (see run).
const ProbeTimeout = 5 * time.Second

// StartProber starts probing url every interval until Stop (at most maxRequests requests).
func StartProber(url string, interval time.Duration, maxRequests int) *Prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prober{cancel: cancel, done: make(chan struct{})}
	go p.run(ctx, url, interval, maxRequests)
	return p
}

func (p *Prober) run(ctx context.Context, url string, interval time.Duration, maxRequests int) {
	defer close(p.done)
	// A request fails when it gets no 2xx answer within ProbeTimeout: a client that gives up
	// sooner measures the machine's load (1 s did, once, on this 2-core machine at load 5, in a
	// deployment that dropped nothing), not the deployment; slow answers are in Slowest.
	client := &http.Client{Timeout: ProbeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < maxRequests; i++ {
		start := time.Now()
		ok, body := probeOnce(ctx, client, url)
		now := time.Now()
		p.mu.Lock()
		p.report.Requests++
		if ok {
			p.report.Slowest = max(p.report.Slowest, now.Sub(start))
			p.gapEnds(now)
			p.failing, p.lastOK = false, now
			if n := len(p.report.Bodies); n == 0 || p.report.Bodies[n-1] != body {
				p.report.Bodies = append(p.report.Bodies, body)
			}
		} else if ctx.Err() == nil && p.lastOK.IsZero() {
			p.report.BeforeFirstOK++
		} else if ctx.Err() == nil {
			p.report.Failures++
			p.failing = true
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func probeOnce(ctx context.Context, client *http.Client, url string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, ""
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode/100 == 2, string(body)
}

// gapEnds records the gap that ends now, if one is open.
func (p *Prober) gapEnds(now time.Time) {
	if p.failing && !p.lastOK.IsZero() && now.Sub(p.lastOK) > p.report.LongestGap {
		p.report.LongestGap = now.Sub(p.lastOK)
	}
}

// Stop ends the probing and returns the report; a gap still open counts up to now.
func (p *Prober) Stop() Report {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gapEnds(time.Now())
	p.report.Recovered = !p.failing && !p.lastOK.IsZero()
	return p.report
}
