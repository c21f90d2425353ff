package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dagflow/dagflow/store"
)

// watchBuffer is how many changes a Watch channel holds before it drops new
// ones.
const watchBuffer = 64

// channelName is the LISTEN/NOTIFY channel of a schema: "dagflow.<schema>",
// or, when that is longer than PostgreSQL's 63-byte names, "dagflow." and a
// hash of the schema.
func channelName(schema string) string {
	name := "dagflow." + schema
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(schema))
	return "dagflow." + hex.EncodeToString(sum[:16])
}

func payload(c store.Change) (string, error) {
	switch c.Kind {
	case store.ChangeDue:
		return "due", nil
	case store.ChangeRun:
		return "run:" + c.RunID, nil
	case store.ChangeSchedules:
		return "schedules", nil
	}
	return "", fmt.Errorf("postgres: Notify: unknown change kind %d", c.Kind)
}

func parsePayload(p string) (store.Change, bool) {
	switch p {
	case "due":
		return store.Change{Kind: store.ChangeDue}, true
	case "schedules":
		return store.Change{Kind: store.ChangeSchedules}, true
	}
	if id, ok := strings.CutPrefix(p, "run:"); ok {
		return store.Change{Kind: store.ChangeRun, RunID: id}, true
	}
	return store.Change{}, false // from a newer dagflow, say
}

// Notify tells every Watch on the store's schema, in this process and
// others, about c, with pg_notify. PostgreSQL delivers the notification
// when the statement commits, which is at once: call Notify after the
// transaction that made the change committed. It returns store.ErrClosed
// after Close.
func (s *Store) Notify(ctx context.Context, c store.Change) error {
	p, err := payload(c)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.enter() {
		return store.ErrClosed
	}
	defer s.wg.Done()
	for try := 0; ; try++ {
		_, err := s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", s.channel, p)
		if err == nil {
			return nil
		}
		// A connection of the pool that the server closed (a restart,
		// pg_terminate_backend) fails once; the next is a new one.
		if try == 2 || !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("postgres: Notify: %w", err)
		}
	}
}

// Watch delivers the changes that Notify sends on the store's schema, from
// any process (this one included), until ctx is done or the store is
// closed; then it closes the channel. It holds a connection of its own,
// outside the pool, which LISTENs. When that connection breaks, Watch
// connects again with backoff (for as long as it takes) and then delivers a
// ChangeDue and a ChangeSchedules, because notifications sent in between
// are lost. Changes are dropped while the channel's buffer is full: the
// receiver treats each as a hint to look at the store again.
//
// Watch returns an error when it cannot connect the first time, and
// store.ErrClosed after Close.
func (s *Store) Watch(ctx context.Context) (<-chan store.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, store.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closing, cancel)
	conn, err := s.listen(ctx)
	if err != nil {
		stop()
		cancel()
		s.wg.Done()
		return nil, err
	}
	ch := make(chan store.Change, watchBuffer)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		defer close(ch)
		s.watch(ctx, conn, ch)
	}()
	return ch, nil
}

// listen opens a connection that listens on the store's channel.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("postgres: Watch: connecting: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("postgres: Watch: %w", err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

func (s *Store) watch(ctx context.Context, conn *pgx.Conn, ch chan<- store.Change) {
	send := func(c store.Change) {
		select {
		case ch <- c:
		default: // full: the receiver has events to look at already
		}
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			if c, ok := parsePayload(n.Payload); ok {
				send(c)
			}
			continue
		}
		closeConn(conn)
		for try := 0; ; try++ {
			if ctx.Err() != nil || !s.sleep(ctx, backoff(try)) {
				return
			}
			if conn, err = s.listen(ctx); err == nil {
				break
			}
		}
		send(store.Change{Kind: store.ChangeDue})
		send(store.Change{Kind: store.ChangeSchedules})
	}
}
