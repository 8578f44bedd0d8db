package fleet

import (
	"net"
	"strings"
	"testing"
)

// A taken port is named with the process holding it, before any instance starts.
func TestPortFreeNamesTheHolder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = PortFree(l.Addr().String())
	t.Logf("%v", err)
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()+" is taken") || !strings.Contains(err.Error(), "fleet.test") {
		t.Errorf("PortFree on a held port = %v, want it taken, held by this test binary", err)
	}
	l.Close()
	if err := PortFree(l.Addr().String()); err != nil {
		t.Errorf("a free port: %v", err)
	}
}

func TestStatusRegexp(t *testing.T) {
	for in, want := range map[string]string{"200-399": "^([2-3][0-9][0-9])$", "200,302": "^(200|302)$", "200-202": "^(200|201|202)$"} {
		if got := statusRegexp(in); got != want {
			t.Errorf("statusRegexp(%q) = %q, want %q", in, got, want)
		}
	}
}
