package dagflow_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dagflow/dagflow"
)

// The bbolt benchmarks run with fsync on (the default) and measure the
// engine on a file beside raw bbolt on the same disk, in the same run.

// rawRecord is a 200-byte record, about the size of a step's.
var rawRecord = make([]byte, 200)

func openRawBolt(b *testing.B) *bbolt.DB {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("r")); return err }); err != nil {
		b.Fatal(err)
	}
	return db
}

func key(i int) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(i))
	return k[:]
}

// BenchmarkBoltFanOut10k: a fan-out of 10,000 no-op steps on bbolt, beside
// raw bbolt writing two records per step with db.Batch from 128 goroutines.
func BenchmarkBoltFanOut10k(b *testing.B) {
	const steps = 10_000
	b.Run("raw-batch-128", func(b *testing.B) {
		db := openRawBolt(b)
		n := 0
		for b.Loop() {
			var wg sync.WaitGroup
			next := make(chan int, 2*steps)
			for i := 0; i < 2*steps; i++ {
				next <- n + i
			}
			close(next)
			n += 2 * steps
			for g := 0; g < 128; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("r")).Put(key(i), rawRecord) })
					}
				}()
			}
			wg.Wait()
		}
		b.ReportMetric(float64(b.N*2*steps)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("dagflow-bolt", func(b *testing.B) {
		wf := benchFan(steps).workflow("fan")
		dir := b.TempDir()
		ctx := context.Background()
		i := 0
		for b.Loop() {
			b.StopTimer()
			eng := openBolt(b, filepath.Join(dir, fmt.Sprintf("fan%d.db", i)), dagflow.WithConcurrency(128),
				dagflow.WithHandler("noop", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil }))
			i++
			b.StartTimer()
			if _, err := eng.Create(ctx, wf); err != nil {
				b.Fatal(err)
			}
			if st, err := eng.Wait(ctx, wf.ID); err != nil || st.State != dagflow.StateCompleted {
				b.Fatal(st, err)
			}
			b.StopTimer()
			eng.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(b.N*steps)/b.Elapsed().Seconds(), "steps/s")
	})
}

// BenchmarkBoltChain1k: a chain of 1,000 no-op steps on bbolt, beside one
// sequential bbolt commit (db.Update of one record) per step.
func BenchmarkBoltChain1k(b *testing.B) {
	const steps = 1000
	b.Run("raw-sequential-commit", func(b *testing.B) {
		db := openRawBolt(b)
		n := 0
		for b.Loop() {
			for i := 0; i < steps; i++ {
				db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("r")).Put(key(n), rawRecord) })
				n++
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*steps), "ns/commit")
	})
	b.Run("dagflow-bolt", func(b *testing.B) {
		wf := benchChain(steps).workflow("chain")
		dir := b.TempDir()
		ctx := context.Background()
		i := 0
		for b.Loop() {
			b.StopTimer()
			eng := openBolt(b, filepath.Join(dir, fmt.Sprintf("chain%d.db", i)),
				dagflow.WithHandler("noop", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil }))
			i++
			b.StartTimer()
			if _, err := eng.Create(ctx, wf); err != nil {
				b.Fatal(err)
			}
			if st, err := eng.Wait(ctx, wf.ID); err != nil || st.State != dagflow.StateCompleted {
				b.Fatal(st, err)
			}
			b.StopTimer()
			eng.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*steps), "ns/step")
	})
}

var _ = time.Second
