package postgres

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dagflow/dagflow/store"
)

// proxy forwards TCP connections to PostgreSQL, and can play an outage:
// cut every connection and refuse new ones until it is back up.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
	// drop, while set, discards what the client sends (toServer) or
	// what the server answers (toClient).
	dropToServer, dropToClient atomic.Bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn, drop *atomic.Bool) {
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 && !drop.Load() {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			dst.Close()
			src.Close()
		}
		go pipe(up, c, &p.dropToServer)
		go pipe(c, up, &p.dropToClient)
	}
}

// setDown starts (true) or ends an outage.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// openThroughProxy opens a store whose connections (pool and Watch) go
// through a proxy, on a new schema.
func openThroughProxy(t *testing.T, o Options) (*Store, *proxy) {
	o.Schema = ""
	return openProxied(t, o)
}

// openProxied opens a store through a proxy on o.Schema (a new one when
// empty); its connections' application_name is appName(schema).
func openProxied(t *testing.T, o Options) (*Store, *proxy) {
	cfg, err := pgxpool.ParseConfig(testDSN())
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port))
	addr := p.ln.Addr().(*net.TCPAddr)
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = addr.IP.String(), uint16(addr.Port)
	cfg.ConnConfig.Fallbacks = nil
	cfg.MaxConns = 4
	if o.Schema == "" {
		o.Schema = newSchema(t)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = appName(o.Schema)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := New(context.Background(), pool, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p
}

// During an outage Update waits, trying again with backoff, and carries on
// when the server is back.
func TestUpdateSurvivesOutage(t *testing.T) {
	t.Parallel()
	adminPool(t)
	s, p := openThroughProxy(t, Options{})
	putRun(t, s, "a", 1)
	p.setDown(true)
	go func() {
		time.Sleep(time.Second)
		p.setDown(false)
	}()
	calls := 0
	start := time.Now()
	err := s.Update(context.Background(), func(tx store.Tx) error {
		calls++
		r, err := tx.Run("a")
		if err != nil {
			return err
		}
		r.Done++
		return tx.PutRun(r)
	})
	if err != nil {
		t.Fatalf("Update during a 1 s outage = %v", err)
	}
	t.Logf("Update took %v and %d calls of its function", time.Since(start).Round(time.Millisecond), calls)
	s.View(context.Background(), func(tx store.Tx) error {
		r, err := tx.Run("a")
		if err != nil || r.Done != 1 {
			t.Errorf("after the outage run = %+v, %v; want Done 1", r, err)
		}
		return nil
	})
}

// An outage longer than the retries makes Update fail with the cause, and
// Close stops an Update waiting to try again.
func TestUpdateGivesUp(t *testing.T) {
	t.Parallel()
	adminPool(t)
	s, p := openThroughProxy(t, Options{MaxRetries: 2})
	putRun(t, s, "a", 1)
	p.setDown(true)
	err := s.Update(context.Background(), func(tx store.Tx) error { _, err := tx.Run("a"); return err })
	if err == nil {
		t.Fatal("Update succeeded during an outage")
	}
	t.Logf("Update during an outage: %v", err)

	done := make(chan error, 1)
	s2, p2 := openThroughProxy(t, Options{MaxRetries: 100})
	p2.setDown(true)
	go func() {
		done <- s2.Update(context.Background(), func(tx store.Tx) error { _, err := tx.Run("a"); return err })
	}()
	time.Sleep(300 * time.Millisecond)
	s2.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Update succeeded during an outage")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop an Update waiting to try again")
	}
}

// Watch outlives an outage and delivers notifications sent after it.
func TestWatchSurvivesOutage(t *testing.T) {
	t.Parallel()
	adminPool(t)
	s, p := openThroughProxy(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.setDown(true)
	time.Sleep(500 * time.Millisecond)
	p.setDown(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("no notification delivered after the outage")
		}
		if err := s.Notify(context.Background(), store.Change{Kind: store.ChangeRun, RunID: "after"}); err != nil {
			time.Sleep(100 * time.Millisecond)
			continue // the pool may hand out a connection the outage cut
		}
		select {
		case ev := <-ch:
			if ev.Kind == store.ChangeRun && ev.RunID == "after" {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
}
