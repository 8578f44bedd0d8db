package build

import (
	"context"
	"errors"
	"testing"
)

// The first step to fail stops the others (their context ends with errOtherFailed), and the
// error is the failure alone, not the stopped steps'.
func TestConcurrentlyFailsFast(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	var cause error
	err := concurrently(context.Background(),
		func(ctx context.Context) error { return boom },
		func(ctx context.Context) error {
			<-ctx.Done() // runs until stopped
			cause = context.Cause(ctx)
			return cause
		})
	if !errors.Is(err, boom) || errors.Is(err, errOtherFailed) {
		t.Errorf("err = %v, want boom alone", err)
	}
	if !errors.Is(cause, errOtherFailed) {
		t.Errorf("the other step was stopped with %v, want errOtherFailed", cause)
	}
	if err := concurrently(context.Background(), func(context.Context) error { return nil }, func(context.Context) error { return nil }); err != nil {
		t.Errorf("all passed: %v", err)
	}
}
