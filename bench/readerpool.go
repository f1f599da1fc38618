package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/jobs"
)

// readerPool is the unordered consumer S2 and S15 hold ordo to: one kafka-go
// Reader in a consumer group feeding c goroutines, no key order, each
// partition committed up to its first job not yet finished (what a careful
// user of a Reader and a pool writes, so that a crash loses no job).
type readerPool struct {
	reader *kafkago.Reader
	cancel context.CancelFunc
	done   chan struct{} // closed when the fetch loop, the pool and the committer have ended

	mu    sync.Mutex
	parts map[int]*poolPartition
	err   error // the first fetch or job error
}

// poolPartition tracks one partition's jobs between fetch and commit.
type poolPartition struct {
	pending   []int64 // offsets handed to the pool, in order, not yet below the commit point
	finished  map[int64]bool
	commit    int64 // every offset below it is finished
	committed int64
}

// startReaderPool starts reading topic from its first offset with a fresh
// group, running handle for each record on one of c goroutines.
func (b *bench) startReaderPool(ctx context.Context, topic string, c int, handle func(kafkago.Message) error) *readerPool {
	ctx, cancel := context.WithCancel(ctx)
	p := &readerPool{
		reader: kafkago.NewReader(kafkago.ReaderConfig{
			Brokers:        b.target.Brokers,
			GroupID:        uniqueName("bench-reader-pool"),
			Topic:          topic,
			MinBytes:       1,
			MaxBytes:       1 << 20,
			MaxWait:        250 * time.Millisecond,
			CommitInterval: 100 * time.Millisecond, // CommitMessages hands the offsets over; the reader commits them this often
			StartOffset:    kafkago.FirstOffset,
		}),
		cancel: cancel,
		done:   make(chan struct{}),
		parts:  map[int]*poolPartition{},
	}
	work := make(chan kafkago.Message, c)
	var pool sync.WaitGroup
	for range c {
		pool.Add(1)
		go func() {
			defer pool.Done()
			for msg := range work {
				if err := handle(msg); err != nil {
					p.fail(fmt.Errorf("job at %s/%d@%d: %w", msg.Topic, msg.Partition, msg.Offset, err))
					continue
				}
				p.finish(msg)
			}
		}()
	}
	committerDone := make(chan struct{})
	go func() {
		defer close(committerDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				p.commitFinished(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer close(p.done)
		for {
			msg, err := p.reader.FetchMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					p.fail(fmt.Errorf("fetch: %w", err))
				}
				break
			}
			p.dispatched(msg)
			select {
			case work <- msg:
			case <-ctx.Done():
			}
		}
		close(work)
		pool.Wait()
		<-committerDone
	}()
	return p
}

func (p *readerPool) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

func (p *readerPool) dispatched(msg kafkago.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	part := p.parts[msg.Partition]
	if part == nil {
		part = &poolPartition{finished: map[int64]bool{}, commit: msg.Offset, committed: msg.Offset}
		p.parts[msg.Partition] = part
	}
	part.pending = append(part.pending, msg.Offset)
}

// finish marks msg's job finished and moves its partition's commit point
// past every finished job that no unfinished one precedes.
func (p *readerPool) finish(msg kafkago.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	part := p.parts[msg.Partition]
	part.finished[msg.Offset] = true
	for len(part.pending) > 0 && part.finished[part.pending[0]] {
		delete(part.finished, part.pending[0])
		part.commit = part.pending[0] + 1
		part.pending = part.pending[1:]
	}
}

// commitFinished hands the partitions' new commit points to the reader.
func (p *readerPool) commitFinished(ctx context.Context) {
	p.mu.Lock()
	var msgs []kafkago.Message
	for n, part := range p.parts {
		if part.commit > part.committed {
			// The Reader commits a message's offset + 1.
			msgs = append(msgs, kafkago.Message{Topic: p.reader.Config().Topic, Partition: n, Offset: part.commit - 1})
			part.committed = part.commit
		}
	}
	p.mu.Unlock()
	if len(msgs) > 0 {
		if err := p.reader.CommitMessages(ctx, msgs...); err != nil && ctx.Err() == nil {
			p.fail(fmt.Errorf("commit: %w", err))
		}
	}
}

// stop ends the fetches, waits for the jobs handed to the pool, and closes
// the reader, which commits what was handed to it. It returns the first
// fetch, job or commit error.
func (p *readerPool) stop() error {
	p.cancel()
	<-p.done
	p.commitFinished(context.Background())
	err := p.reader.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.err, err)
}

// runReaderPool runs a reader pool over topic until m is full.
func (b *bench) runReaderPool(ctx context.Context, what, topic string, c int, m *meter, limit time.Duration,
	handle func(kafkago.Message) error) error {
	p := b.startReaderPool(ctx, topic, c, handle)
	werr := b.wait(ctx, what, m, limit, func() []jobs.PartitionStats { return nil })
	return errors.Join(werr, p.stop())
}

// decodeJob decodes a job record's envelope and its args into args, as a
// consumer of ordo's records without ordo would.
func decodeJob(value []byte, args any) error {
	env, err := envelope.Decode(value)
	if err != nil {
		return err
	}
	return msgpack.Unmarshal(env.Args, args)
}

// sleepHandler is sleepWorker for the reader pool.
func sleepHandler(m *meter) func(kafkago.Message) error {
	return func(msg kafkago.Message) error {
		var args SleepArgs
		if err := decodeJob(msg.Value, &args); err != nil {
			return err
		}
		m.start()
		time.Sleep(time.Duration(args.Micros) * time.Microsecond)
		m.done()
		return nil
	}
}
