package dagflow

import (
	"context"
	"errors"
	"time"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/store"
)

// A run's onComplete or onError webhook is recorded in the transaction that
// ends the run (see flowEnv.Webhooks), so that a crash cannot lose it. The
// scheduler claims due webhooks in its pass; each is sent on a goroutine of
// its own (with go-retryablehttp's quick retries) and its outcome recorded.
// A failed delivery is due again after a growing backoff until it has been
// tried WithWebhookAttempts times (a reply that another try cannot mend, a
// 4xx other than 408 and 429, ends it at once), and stays in the store
// either way.

// hookLease is how long a webhook delivery may take before another engine
// (or this one, after a restart) sends it again.
const hookLease = 2 * time.Minute

// claimWebhooks claims up to max due webhooks: each is counted and due again
// after hookLease, in case this process dies while sending it.
func (e *Engine) claimWebhooks(tx store.Tx, now time.Time, max int) ([]store.Webhook, error) {
	if max <= 0 || e.draining.Load() {
		return nil, nil
	}
	due, err := tx.DueWebhooks(now, max)
	if err != nil {
		return nil, err
	}
	for i := range due {
		w := &due[i]
		w.Attempts++
		w.DueAt = now.Add(hookLease)
		w.LastError = "" // a webhook not delivered and without an error is being sent
		if err := tx.PutWebhook(*w); err != nil {
			return nil, err
		}
	}
	return due, nil
}

// deliver sends a claimed webhook and records how it went.
func (e *Engine) deliver(w store.Webhook) {
	ctx, cancel := context.WithTimeout(e.ctx, hookLease-10*time.Second)
	sendErr := e.http.Deliver(ctx, w.URL, w.RunID+"/"+w.ID, w.Body, 3)
	cancel()
	closing := e.ctx.Err() != nil
	var recorded store.Webhook
	err := e.store.Update(e.bgCtx, func(tx store.Tx) error {
		recorded = store.Webhook{}
		hooks, err := tx.Webhooks(w.RunID)
		if err != nil {
			return err
		}
		for _, cur := range hooks {
			if cur.ID != w.ID || cur.Attempts != w.Attempts {
				continue // claimed again since
			}
			now := e.now()
			switch {
			case sendErr == nil:
				cur.DeliveredAt, cur.DueAt, cur.LastError = now, time.Time{}, ""
			case closing:
				// Cut short by Close: not counted, and due at once for the
				// next engine to open the store.
				cur.Attempts--
				cur.DueAt = now
			default:
				cur.LastError = sendErr.Error()
				var he *httpstep.Error
				if errors.As(sendErr, &he) && !he.Retryable || cur.Attempts >= e.cfg.hookTries {
					cur.DueAt = time.Time{}
				} else {
					cur.DueAt = now.Add(e.cfg.jitter(hookBackoff(cur.Attempts)) + time.Second)
				}
			}
			recorded = cur
			return tx.PutWebhook(cur)
		}
		return nil
	})
	if err != nil {
		e.log.Error("dagflow: recording a webhook delivery", "run", w.RunID, "error", err)
		return
	}
	// Logged once committed (a store may run the transaction again).
	switch {
	case recorded.ID == "" || closing && sendErr != nil:
	case sendErr == nil:
		e.log.Info("dagflow: webhook delivered", "run", w.RunID, "event", w.Event, "url", redactURL(w.URL), "attempt", recorded.Attempts)
	case recorded.DueAt.IsZero():
		e.log.Error("dagflow: giving up on a webhook", "run", w.RunID, "url", redactURL(w.URL), "attempts", recorded.Attempts, "error", sendErr)
	default:
		e.log.Warn("dagflow: a webhook failed; it will be sent again", "run", w.RunID, "url", redactURL(w.URL),
			"attempt", recorded.Attempts, "next", recorded.DueAt, "error", sendErr)
		e.sched.setTimer(recorded.DueAt)
	}
}

// hookBackoff grows from 2 s to an hour.
func hookBackoff(attempts int) time.Duration {
	d := 2 * time.Second << min(attempts, 12)
	return min(d, time.Hour)
}
