package dagflow

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAttemptContext(t *testing.T) {
	t.Run("deadline without Done", func(t *testing.T) {
		var c attemptCtx
		c.init(context.Background(), time.Now().Add(10*time.Millisecond))
		defer c.release()
		if c.Err() != nil {
			t.Fatal("done too early")
		}
		time.Sleep(20 * time.Millisecond)
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", c.Err())
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done not closed after the deadline passed")
		}
	})
	t.Run("deadline with Done", func(t *testing.T) {
		var c attemptCtx
		c.init(context.Background(), time.Now().Add(10*time.Millisecond))
		defer c.release()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done never closed")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", c.Err())
		}
	})
	t.Run("parent cancelled", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), "k", "v"))
		var c attemptCtx
		c.init(parent, time.Now().Add(time.Hour))
		defer c.release()
		done := c.Done()
		if c.Value("k") != "v" {
			t.Error("values not passed through")
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed when the parent was cancelled")
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err = %v", c.Err())
		}
		if d, ok := c.Deadline(); !ok || d.IsZero() {
			t.Error("no deadline")
		}
	})
	t.Run("already done", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		cancel()
		var c attemptCtx
		c.init(parent, time.Now().Add(time.Hour))
		defer c.release()
		select {
		case <-c.Done():
		default:
			t.Fatal("Done of a context with a cancelled parent is open")
		}
	})
}
