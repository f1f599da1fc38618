package actors

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ordo-go/ordo/kafka"
)

// committer commits the published watermarks of the runtime's partitions,
// one request per generation per round: when a fetched batch completes
// (kick), on an interval, and a final time for partitions being released.
type committer struct {
	rt    *Runtime
	kicks chan struct{}
	quit  chan struct{}
	done  chan struct{}

	// mu makes rounds and final commits take turns, so an offset is
	// never sent behind a later one of the same partition.
	mu sync.Mutex
}

func newCommitter(rt *Runtime) *committer {
	return &committer{rt: rt, kicks: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

// kick asks for a commit soon; kicks made while one is pending merge.
func (c *committer) kick() {
	select {
	case c.kicks <- struct{}{}:
	default:
	}
}

// commitSpacing is the least time between two commits that finished
// batches ask for: under load batches finish hundreds of times a second,
// and one request per batch would cost the broker more than it saves in
// re-runs after a crash.
func (c *committer) commitSpacing() time.Duration { return c.rt.cfg.CommitInterval / 10 }

func (c *committer) run() {
	defer close(c.done)
	tick := time.NewTicker(c.rt.cfg.CommitInterval)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-c.quit:
			return
		case <-c.kicks:
			if wait := c.commitSpacing() - time.Since(last); wait > 0 {
				select {
				case <-time.After(wait):
				case <-c.quit:
					return
				}
			}
		case <-tick.C:
		}
		last = time.Now()
		c.rt.mu.Lock()
		ps := make([]*partition, 0, len(c.rt.parts))
		for _, p := range c.rt.parts {
			if !p.isRevoked() {
				ps = append(ps, p)
			}
		}
		c.rt.mu.Unlock()
		if err := c.commit(ps); err != nil {
			c.rt.cfg.Logger.Warn("ordo: commit failed; will retry", "err", err)
		}
	}
}

func (c *committer) stop() {
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	<-c.done
}

// commitFinal commits the partitions' last watermarks, with their metadata.
func (c *committer) commitFinal(ps []*partition) error { return c.commit(ps) }

func (c *committer) commit(ps []*partition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	type pending struct {
		p   *partition
		off kafka.Offset
	}
	byGen := map[Generation][]pending{}
	for _, p := range ps {
		o := kafka.Offset{Topic: p.topic, Partition: p.partition}
		committed, lastMeta := p.committed.Load(), p.committedMeta.Load()
		meta := p.metadata.Load()
		switch pt := p.point.Load(); {
		case meta != nil:
			// A drain's final state: the watermark as it left it.
			o.Offset, o.Metadata = p.committable.Load(), *meta
		case pt != nil && (pt.offset > committed || pt.offset == committed && (lastMeta == nil || *lastMeta != pt.meta)):
			// Only ever a commit point: an offset with the records
			// finished above it, at most a commit spacing old. The
			// committable offset alone, even a newer one, would drop
			// that list, and after a crash the next owner would run
			// them again (the previous owner's finished records too,
			// which this one was handed in its start metadata). A
			// head that does not move still gets its finished set
			// committed as it grows.
			o.Offset, o.Metadata = pt.offset, pt.meta
		default:
			continue
		}
		if o.Offset < 0 {
			continue
		}
		byGen[p.gen] = append(byGen[p.gen], pending{p, o})
	}
	var errs []error
	for gen, batch := range byGen {
		offsets := make([]kafka.Offset, len(batch))
		for i, b := range batch {
			offsets[i] = b.off
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := gen.Commit(ctx, offsets...)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, b := range batch {
			if c.rt.cfg.OnCommitted != nil {
				c.rt.cfg.OnCommitted(b.off)
			}
			b.p.committed.Store(b.off.Offset)
			b.p.committedMeta.Store(&b.off.Metadata)
		}
	}
	return errors.Join(errs...)
}
