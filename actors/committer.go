package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/ordo-go/ordo/kafka"
)

// committer commits the published watermarks of one generation's partitions
// in one request per round: when a fetched batch completes (kick), on an
// interval, and a final time when the generation ends.
type committer struct {
	gen      Generation
	interval time.Duration
	log      *slog.Logger
	parts    []*partitionState
	last     []int64
	kicks    chan struct{}
	quit     chan struct{}
	exited   chan struct{}
}

func newCommitter(gen Generation, interval time.Duration, log *slog.Logger) *committer {
	return &committer{
		gen: gen, interval: interval, log: log,
		kicks: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{}),
	}
}

func (c *committer) add(p *partitionState, start int64) {
	c.parts = append(c.parts, p)
	c.last = append(c.last, start)
}

// kick asks for a commit soon; kicks made while one is pending merge.
func (c *committer) kick() {
	select {
	case c.kicks <- struct{}{}:
	default:
	}
}

func (c *committer) run() {
	defer close(c.exited)
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-c.kicks:
		case <-tick.C:
		}
		if err := c.commit(); err != nil {
			c.log.Warn("ordo: commit failed; will retry", "err", err)
		}
	}
}

// stop ends the loop and makes the final commit.
func (c *committer) stop() error {
	close(c.quit)
	<-c.exited
	return c.commit()
}

func (c *committer) commit() error {
	var offsets []kafka.Offset
	var idx []int
	var metas []*string
	for i, p := range c.parts {
		off := p.committable.Load()
		meta := p.metadata.Load()
		if off < 0 || (off <= c.last[i] && meta == nil) {
			continue
		}
		o := kafka.Offset{Topic: p.topic, Partition: p.partition, Offset: off}
		if meta != nil {
			o.Metadata = *meta
		}
		offsets = append(offsets, o)
		idx = append(idx, i)
		metas = append(metas, meta)
	}
	if len(offsets) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.gen.Commit(ctx, offsets...); err != nil {
		return err
	}
	for j, i := range idx {
		c.last[i] = offsets[j].Offset
		c.parts[i].committed.Store(offsets[j].Offset)
		if metas[j] != nil {
			c.parts[i].metadata.CompareAndSwap(metas[j], nil)
		}
	}
	return nil
}
