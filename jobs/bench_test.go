package jobs_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// BenchmarkRecordServer gives quick records/s figures for the runtime core:
// a no-op handler and a 1 ms handler at several concurrency limits, over 8
// partitions and 1,000 keys. The bench harness (go run ./bench) measures
// properly, against baselines.
//
//	go test -run - -bench RecordServer -benchtime 1x ./jobs
func BenchmarkRecordServer(b *testing.B) {
	for _, work := range []time.Duration{0, time.Millisecond} {
		for _, c := range []int{1, 14, 100} {
			n := 20_000
			if work > 0 {
				n = min(20_000, c*2000) // about 2 s at the bound
			}
			b.Run(fmt.Sprintf("work=%v/c=%d", work, c), func(b *testing.B) {
				env := kafkatest.New(b)
				topic := env.Topic(b, 8)
				produce(b, env, topic, n, func(i int) string { return "key-" + strconv.Itoa(i%1000) })
				b.ResetTimer()
				for range b.N {
					var done atomic.Int64
					s, err := jobs.NewRecordServer(jobs.RecordServerConfig{
						Consumer: consumerConfig(b, env, topic, env.Group(b)),
						Runtime: actors.Config{Concurrency: c, Logger: testLogger(b),
							Handler: func(ctx context.Context, r *kafka.Record, _ int) actors.Outcome {
								if work > 0 {
									time.Sleep(work)
								}
								done.Add(1)
								return actors.Done()
							}},
					})
					if err != nil {
						b.Fatal(err)
					}
					if err := s.Start(context.Background()); err != nil {
						b.Fatal(err)
					}
					kafkatest.WaitFor(b, 5*time.Minute, "all records", func() bool { return done.Load() >= int64(n) })
					b.StopTimer()
					_ = s.Stop(context.Background())
					b.StartTimer()
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
				if work > 0 {
					b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds()/(float64(c)*float64(time.Second/work)), "of-bound")
				}
			})
		}
	}
}
