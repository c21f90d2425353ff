package dagflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// Webhooks implements flow.Env: the onComplete or onError call of a run
// that has just ended, with its final status as the body. They are written
// in the same transaction that ends the run, so a crash cannot lose them.
func (v *flowEnv) Webhooks(tx store.Tx, r *store.Run, p *flow.Plan, now time.Time) ([]store.Webhook, error) {
	e := (*Engine)(v)
	url, event := p.OnComplete, "complete"
	if r.State != store.RunCompleted {
		url, event = p.OnError, "error"
	}
	if url == "" {
		return nil, nil
	}
	steps, err := tx.Steps(r.ID)
	if err != nil {
		return nil, err
	}
	wctx, err := e.runContext(tx, r.ID)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(buildStatus(r, wctx, steps))
	if err != nil {
		return nil, err
	}
	return []store.Webhook{{
		ID: fmt.Sprintf("%s/%d", event, r.Generation), RunID: r.ID, URL: url, Event: event,
		Body: body, DueAt: now, CreatedAt: now,
	}}, nil
}

// hookLease is how long a webhook delivery may take before another engine
// (or this one, after a restart) sends it again.
const hookLease = 2 * time.Minute

// hookIdle is how long the webhook loop waits, when steps are due but no
// webhook is, before it looks again (failed deliveries wait a second or more
// for their next try, so none is late by much).
const hookIdle = time.Second

// hookLoop delivers due webhooks: each delivery is claimed in the store,
// sent (with go-retryablehttp's quick retries), and its outcome recorded;
// a failed delivery is due again after a growing backoff until it has been
// tried WithWebhookAttempts times (a reply that another try cannot mend, a
// 4xx other than 408 and 429, ends it at once), and stays in the store either
// way.
func (e *Engine) hookLoop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.hookWake:
		case <-timer.C:
		}
		for e.ctx.Err() == nil {
			var hooks []store.Webhook
			var next time.Time
			err := e.store.Update(e.ctx, func(tx store.Tx) error {
				hooks = hooks[:0]
				now := e.now()
				due, err := tx.DueWebhooks(now, 16)
				if err != nil {
					return err
				}
				for _, w := range due {
					// Claimed: counted, and due again after the lease in
					// case this process dies while sending. An error of an
					// earlier try is cleared, so that a webhook not
					// delivered and without an error is one not tried yet
					// or being sent.
					w.Attempts++
					w.DueAt = now.Add(hookLease)
					w.LastError = ""
					if err := tx.PutWebhook(w); err != nil {
						return err
					}
					hooks = append(hooks, w)
				}
				next, err = tx.NextDue()
				return err
			})
			if err != nil {
				if e.ctx.Err() == nil {
					e.log.Error("dagflow: claiming webhooks", "error", err)
					timer.Reset(time.Second)
				}
				break
			}
			if len(hooks) > 0 {
				e.deliver(hooks)
				continue
			}
			wait := time.Duration(-1)
			if !next.IsZero() {
				wait = time.Until(next)
				if wait <= 0 {
					// NextDue counts steps too: what is due now is a step
					// (or a webhook another engine is claiming), not a
					// webhook of ours. Look again later rather than spin;
					// a webhook queued meanwhile signals this loop.
					wait = hookIdle
				}
			}
			if e.lease > 0 && (wait < 0 || wait > e.cfg.poll) {
				wait = e.cfg.poll
			}
			if wait >= 0 {
				timer.Reset(wait)
			}
			break
		}
	}
}

// deliver sends webhooks at once and records how each went.
func (e *Engine) deliver(hooks []store.Webhook) {
	var wg sync.WaitGroup
	errs := make([]error, len(hooks))
	for i := range hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &hooks[i]
			ctx, cancel := context.WithTimeout(e.ctx, hookLease-10*time.Second)
			defer cancel()
			errs[i] = e.http.Deliver(ctx, w.URL, w.RunID+"/"+w.ID, w.Body, 3)
		}()
	}
	wg.Wait()
	closing := e.ctx.Err() != nil
	recorded := make([]store.Webhook, len(hooks)) // as written; zero ID if not
	err := e.store.Update(e.bgCtx, func(tx store.Tx) error {
		now := e.now()
		clear(recorded)
		for i, w := range hooks {
			cur, err := e.webhook(tx, w.RunID, w.ID)
			if err != nil || cur.Attempts != w.Attempts {
				continue // gone, or claimed again since
			}
			switch {
			case errs[i] == nil:
				cur.DeliveredAt, cur.DueAt, cur.LastError = now, time.Time{}, ""
			case closing:
				// Cut short by Close: not counted, and due at once for the
				// next engine to open the store.
				cur.Attempts--
				cur.DueAt = now
			default:
				cur.LastError = errs[i].Error()
				var he *httpstep.Error
				if errors.As(errs[i], &he) && !he.Retryable || cur.Attempts >= e.cfg.hookTries {
					cur.DueAt = time.Time{}
				} else {
					cur.DueAt = now.Add(e.cfg.jitter(hookBackoff(cur.Attempts)) + time.Second)
				}
			}
			if err := tx.PutWebhook(cur); err != nil {
				return err
			}
			recorded[i] = cur
		}
		return nil
	})
	if err != nil {
		e.log.Error("dagflow: recording webhook deliveries", "error", err)
		return
	}
	// Logged once committed (a store may run the transaction again).
	for i, w := range recorded {
		switch {
		case w.ID == "" || closing && errs[i] != nil:
		case errs[i] == nil:
			e.log.Info("dagflow: webhook delivered", "run", w.RunID, "event", w.Event, "url", redactURL(w.URL), "attempt", w.Attempts)
		case w.DueAt.IsZero():
			e.log.Error("dagflow: giving up on a webhook", "run", w.RunID, "url", redactURL(w.URL), "attempts", w.Attempts, "error", errs[i])
		default:
			e.log.Warn("dagflow: a webhook failed; it will be sent again", "run", w.RunID, "url", redactURL(w.URL),
				"attempt", w.Attempts, "next", w.DueAt, "error", errs[i])
		}
	}
}

func (e *Engine) webhook(tx store.Tx, runID, id string) (store.Webhook, error) {
	hooks, err := tx.Webhooks(runID)
	if err != nil {
		return store.Webhook{}, err
	}
	for _, w := range hooks {
		if w.ID == id {
			return w, nil
		}
	}
	return store.Webhook{}, store.ErrNotFound
}

// hookBackoff grows from 2 s to an hour.
func hookBackoff(attempts int) time.Duration {
	d := 2 * time.Second << min(attempts, 12)
	return min(d, time.Hour)
}
