package build

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// probe GETs url until it answers 2xx, for at most timeout, and says in one
// line what answered (or what it saw last), naming the URL as shown.
func probe(ctx context.Context, url, shown string, timeout time.Duration) (answer string, ok bool) {
	client := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	last := "no answer"
	for {
		elapsed := time.Since(start)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Sprintf("GET %s: %v", shown, err), false
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return fmt.Sprintf("GET %s: %d after %.1fs: %s", shown, resp.StatusCode, elapsed.Seconds(),
					strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))), true
			}
			last = "HTTP " + resp.Status
		} else {
			last = err.Error()
			if i := strings.LastIndex(last, ": "); i >= 0 { // the cause, not Go's "Get <tunnel url>:" prefix
				last = last[i+2:]
			}
		}
		if ctx.Err() != nil || elapsed >= timeout {
			return fmt.Sprintf("GET %s: not 2xx within %gs; last answer: %s", shown, timeout.Seconds(), last), false
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
