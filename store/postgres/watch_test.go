package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/dagflow/dagflow/store"
)

// next returns the next change on ch, or fails the test after a while.
func next(t *testing.T, ch <-chan store.Change) store.Change {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the Watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	panic("unreachable")
}

func TestWatchNotify(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s1 := openStore(t, schema, Options{})
	s2 := openStore(t, schema, Options{})
	other := openStore(t, newSchema(t), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s2.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	otherCh, err := other.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []store.Change{{Kind: store.ChangeRun, RunID: "order-1"}, {Kind: store.ChangeDue}, {Kind: store.ChangeSchedules}, {Kind: store.ChangeRun, RunID: "a:b c"}} {
		if err := s1.Notify(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if got := next(t, ch); got != ev {
			t.Errorf("Watch delivered %+v, want %+v", got, ev)
		}
	}
	select {
	case ev := <-otherCh:
		t.Errorf("a store on another schema got %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
	if err := s1.Notify(context.Background(), store.Change{Kind: 99}); err == nil {
		t.Error("Notify of an unknown kind succeeded")
	}
	cancel()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if ok {
				continue
			}
		case <-timeout:
			t.Fatal("the channel did not close when ctx was done")
		}
		break
	}
}

// A full channel drops events rather than blocking the listener.
func TestWatchDropsWhenFull(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range watchBuffer + 20 {
		if err := s.Notify(context.Background(), store.Change{Kind: store.ChangeDue}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Notify(context.Background(), store.Change{Kind: store.ChangeRun, RunID: "last"}); err != nil {
		t.Fatal(err)
	}
	// Wait for the buffer to fill, then a little for the rest to arrive
	// (and be dropped).
	for deadline := time.Now().Add(10 * time.Second); len(ch) < cap(ch); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the buffer holds %d events, want %d", len(ch), cap(ch))
		}
	}
	time.Sleep(200 * time.Millisecond)
	n := 0
	for len(ch) > 0 {
		<-ch
		n++
	}
	if n != watchBuffer {
		t.Errorf("drained %d events, want a full buffer of %d", n, watchBuffer)
	}
	// The listener still runs.
	if err := s.Notify(context.Background(), store.Change{Kind: store.ChangeRun, RunID: "after"}); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.RunID != "after" {
		t.Errorf("after draining got %+v", ev)
	}
}

// Watch survives its connection being killed: it connects again and
// delivers later notifications.
func TestWatchReconnects(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s := openStore(t, schema, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listener := func() int {
		var pid int
		err := adminPool(t).QueryRow(context.Background(),
			"SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE query = $1", `LISTEN "`+channelName(schema)+`"`).Scan(&pid)
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	pid := listener()
	if pid == 0 {
		t.Fatal("no listening connection found")
	}
	var killed bool
	if err := adminPool(t).QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend = %v, %v", killed, err)
	}
	// Notifications sent while the listener is away are lost; the store
	// makes up for them with a ChangeDue and a ChangeSchedules once it is
	// back.
	deadline := time.Now().Add(10 * time.Second)
	sawDue, sawSchedules := false, false
	for {
		if time.Now().After(deadline) {
			t.Fatal("no notification delivered after the connection was killed")
		}
		if err := s.Notify(context.Background(), store.Change{Kind: store.ChangeRun, RunID: "after"}); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-ch:
			if ev.Kind == store.ChangeDue {
				sawDue = true
				continue
			}
			if ev.Kind == store.ChangeSchedules {
				sawSchedules = true
				continue
			}
			if ev.RunID != "after" {
				t.Fatalf("got %+v", ev)
			}
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	if !sawDue || !sawSchedules {
		t.Errorf("after reconnecting: a ChangeDue %v, a ChangeSchedules %v; want both", sawDue, sawSchedules)
	}
	if now := listener(); now == 0 || now == pid {
		t.Errorf("listener pid after the kill = %d (before: %d)", now, pid)
	}
}
