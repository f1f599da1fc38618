package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/internal/backoff"
)

// Topic describes a topic to create.
type Topic struct {
	Name       string
	Partitions int
	// ReplicationFactor is how many brokers keep each partition. Default 1.
	ReplicationFactor int
	// Configs are topic-level settings such as "retention.ms"; may be nil.
	Configs map[string]string
}

// ErrTopicExists is wrapped by CreateTopics' error for a topic that exists
// already (another process may have created it first).
var ErrTopicExists error = kafkago.TopicAlreadyExists

// Admin makes the few administrative calls ordo and its tests need. It is
// cheap; it holds one kafka-go client whose connections are pooled.
type Admin struct {
	client *kafkago.Client
}

// NewAdmin returns an Admin that talks to the given bootstrap brokers.
func NewAdmin(brokers []string) *Admin { return NewSecureAdmin(brokers, nil) }

// NewSecureAdmin is NewAdmin over connections secured as sec says (nil:
// plaintext). Check sec with Validate first: a mechanism it refuses is
// dropped, and the broker then refuses the connection.
func NewSecureAdmin(brokers []string, sec *Security) *Admin {
	return &Admin{client: &kafkago.Client{
		Addr:      kafkago.TCP(brokers...),
		Timeout:   10 * time.Second,
		Transport: sec.roundTripper(),
	}}
}

// CreateTopics creates the topics (replication factor 1 unless a Topic says
// otherwise) and waits until every partition has a leader. A topic that
// already exists is an error.
func (a *Admin) CreateTopics(ctx context.Context, topics ...Topic) error {
	req := &kafkago.CreateTopicsRequest{}
	for _, t := range topics {
		cfg := kafkago.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: max(t.ReplicationFactor, 1)}
		for k, v := range t.Configs {
			cfg.ConfigEntries = append(cfg.ConfigEntries, kafkago.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		req.Topics = append(req.Topics, cfg)
	}
	resp, err := a.client.CreateTopics(ctx, req)
	for attempt := 1; errors.Is(err, kafkago.BrokerNotAvailable) && attempt < 5; attempt++ {
		// kafka-go found no controller in its cached metadata, so the
		// request was not sent: a cluster still electing one (seen on
		// the embedded broker under load). Ask again shortly.
		select {
		case <-ctx.Done():
			return fmt.Errorf("create topics: %w (last try: %w)", ctx.Err(), err)
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
		resp, err = a.client.CreateTopics(ctx, req)
	}
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for name, terr := range resp.Errors {
		if terr != nil {
			return fmt.Errorf("create topic %q: %w", name, terr)
		}
	}
	for _, t := range topics {
		if err := a.waitForLeaders(ctx, t.Name, t.Partitions); err != nil {
			return err
		}
	}
	return nil
}

// Partitions returns the partition count of each of the topics that exists;
// a topic the broker does not know is left out.
func (a *Admin) Partitions(ctx context.Context, topics ...string) (map[string]int, error) {
	meta, err := a.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata of topics %q: %w", topics, err)
	}
	out := make(map[string]int, len(topics))
	for _, t := range meta.Topics {
		switch {
		case t.Error == nil:
			out[t.Name] = len(t.Partitions)
		case errors.Is(t.Error, kafkago.UnknownTopicOrPartition):
		default:
			return nil, fmt.Errorf("metadata of topic %q: %w", t.Name, t.Error)
		}
	}
	return out, nil
}

// AddPartitions grows topic to total partitions.
func (a *Admin) AddPartitions(ctx context.Context, topic string, total int) error {
	resp, err := a.client.CreatePartitions(ctx, &kafkago.CreatePartitionsRequest{
		Topics: []kafkago.TopicPartitionsConfig{{Name: topic, Count: int32(total)}},
	})
	if err == nil {
		err = errors.Join(slices.Collect(maps.Values(resp.Errors))...)
	}
	if err != nil {
		return fmt.Errorf("grow topic %q to %d partitions: %w", topic, total, err)
	}
	return a.waitForLeaders(ctx, topic, total)
}

// SetTopicConfigs sets topic-level settings (such as "max.message.bytes") on
// an existing topic.
func (a *Admin) SetTopicConfigs(ctx context.Context, topic string, configs map[string]string) error {
	res := kafkago.IncrementalAlterConfigsRequestResource{ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic}
	for k, v := range configs {
		res.Configs = append(res.Configs, kafkago.IncrementalAlterConfigsRequestConfig{
			Name: k, Value: v, ConfigOperation: kafkago.ConfigOperationSet,
		})
	}
	resp, err := a.client.IncrementalAlterConfigs(ctx, &kafkago.IncrementalAlterConfigsRequest{
		Resources: []kafkago.IncrementalAlterConfigsRequestResource{res},
	})
	if err != nil {
		return fmt.Errorf("set configs of topic %q: %w", topic, err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("set configs of topic %q: %w", topic, r.Error)
		}
	}
	return nil
}

// waitForLeaders polls metadata until the topic shows all its partitions with
// a leader: a real broker creates topics asynchronously.
func (a *Admin) waitForLeaders(ctx context.Context, topic string, partitions int) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		meta, err := a.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(meta.Topics) == 1 && meta.Topics[0].Error == nil &&
			len(meta.Topics[0].Partitions) == partitions && allLed(meta.Topics[0].Partitions) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topic %q to have %d led partitions: %w", topic, partitions, ctx.Err())
		case <-tick.C:
		}
	}
}

func allLed(ps []kafkago.Partition) bool {
	for _, p := range ps {
		if p.Error != nil || p.Leader.Host == "" {
			return false
		}
	}
	return true
}

// DeleteTopics deletes the topics; unknown topics are ignored.
func (a *Admin) DeleteTopics(ctx context.Context, names ...string) error {
	resp, err := a.client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafkago.UnknownTopicOrPartition) {
			return fmt.Errorf("delete topic %q: %w", name, terr)
		}
	}
	return nil
}

// CommittedOffsets reads the group's committed offsets for a topic from the
// broker: partition → next offset to consume. Partitions without a commit are
// absent.
func (a *Admin) CommittedOffsets(ctx context.Context, group, topic string) (map[int]int64, error) {
	offs, err := a.CommittedOffsetsWithMetadata(ctx, group, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(offs))
	for p, o := range offs {
		out[p] = o.Offset
	}
	return out, nil
}

// CommittedOffset is a committed offset and the metadata stored with it.
type CommittedOffset struct {
	Offset   int64
	Metadata string
}

// CommittedOffsetsWithMetadata is CommittedOffsets with the commit metadata.
// A group that does not exist has no committed offsets.
func (a *Admin) CommittedOffsetsWithMetadata(ctx context.Context, group, topic string) (map[int]CommittedOffset, error) {
	// No topic list asks for all of the group's commits: kafka-go sends an
	// empty partition list, not null, for a topic named without partitions.
	resp, err := a.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group})
	if err == nil {
		err = resp.Error
	}
	out := make(map[int]CommittedOffset)
	if errors.Is(err, kafkago.GroupIdNotFound) {
		return out, nil // a group that never committed, as Kafka itself answers it: no offsets
	}
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets of group %q topic %q: %w", group, topic, err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetch committed offset of group %q %s/%d: %w", group, topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = CommittedOffset{Offset: p.CommittedOffset, Metadata: p.Metadata}
		}
	}
	return out, nil
}

// EndOffsets returns each partition's last stable offset: the end of what a
// read_committed reader (every ordo reader) may read, where the partition's
// first open transaction starts, or its high watermark (the offset the next
// produced record will get) when none is open. A broker that is still settling leadership (just
// after the topic was created) is asked again, a few times.
func (a *Admin) EndOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	for attempt := 1; ; attempt++ {
		out, err := a.endOffsets(ctx, topic)
		retriable := errors.Is(err, kafkago.NotLeaderForPartition) || errors.Is(err, kafkago.LeaderNotAvailable) ||
			errors.Is(err, kafkago.UnknownTopicOrPartition)
		if !retriable || attempt == 5 {
			return out, err
		}
		select {
		case <-time.After(backoff.Delay(50*time.Millisecond, time.Second, attempt)):
		case <-ctx.Done():
			return nil, err
		}
	}
}

// StartOffsets returns each partition's log start offset: the oldest record
// retention has kept.
func (a *Admin) StartOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	return a.listOffsets(ctx, topic, kafkago.FirstOffset)
}

func (a *Admin) endOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	return a.listOffsets(ctx, topic, kafkago.LastOffset)
}

// listOffsets lists each partition's first or last offset (which, one of
// kafkago.FirstOffset and kafkago.LastOffset).
func (a *Admin) listOffsets(ctx context.Context, topic string, which int64) (map[int]int64, error) {
	meta, err := a.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of topic %q: %w", topic, err)
	}
	if len(meta.Topics) != 1 {
		return nil, fmt.Errorf("metadata of topic %q: %d topics in the answer", topic, len(meta.Topics))
	}
	if err := meta.Topics[0].Error; err != nil {
		return nil, fmt.Errorf("metadata of topic %q: %w", topic, err)
	}
	partitions := make([]int, len(meta.Topics[0].Partitions))
	for i, p := range meta.Topics[0].Partitions {
		partitions[i] = p.ID
	}
	return partitionOffsets(ctx, a.client, topic, partitions, which)
}

// partitionOffsets lists the first or last offset (which, kafkago.FirstOffset
// or kafkago.LastOffset) of each of topic's partitions.
func partitionOffsets(ctx context.Context, client *kafkago.Client, topic string, partitions []int, which int64) (map[int]int64, error) {
	// Read committed, as ordo's fetches: the last offset is the last
	// stable one, which a reader reaches, not a high watermark past an
	// open transaction it would wait at.
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}, IsolationLevel: kafkago.ReadCommitted}
	for _, p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafkago.OffsetRequest{Partition: p, Timestamp: which})
	}
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets of topic %q: %w", topic, err)
	}
	out := make(map[int]int64)
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		if which == kafkago.FirstOffset {
			out[p.Partition] = p.FirstOffset
		} else {
			out[p.Partition] = p.LastOffset
		}
	}
	return out, nil
}

// Read returns records of topic/partition from offset on, up to about
// maxBytes (at least one record when there is one), without a consumer
// group: for tools that browse a topic. A partition with nothing at or past
// offset gives none. The records own their bytes.
func (a *Admin) Read(ctx context.Context, topic string, partition int, offset int64, maxBytes int) ([]Record, error) {
	if offset < 0 {
		// Resolved here rather than by kafka-go's fetch, so that ordo's
		// decoder reads the records: kafka-go's hands out those of
		// aborted transactions.
		offsets, err := partitionOffsets(ctx, a.client, topic, []int{partition}, offset)
		if err != nil {
			return nil, fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		resolved, ok := offsets[partition]
		if !ok {
			return nil, fmt.Errorf("read %s/%d: list offsets: no answer for the partition", topic, partition)
		}
		offset = resolved
	}
	recs, err := a.read(ctx, topic, partition, offset, maxBytes)
	if !errors.Is(err, errLegacyBatch) || len(recs) > 0 {
		if err != nil {
			return recs, fmt.Errorf("read %s/%d from offset %d: %w", topic, partition, offset, err)
		}
		return recs, nil
	}
	return a.readLegacy(ctx, topic, partition, offset, maxBytes)
}

// read is Read through ordo's own fetch decoding (see fetch.go), which
// costs a record's bytes rather than a kafka-go page per record batch.
func (a *Admin) read(ctx context.Context, topic string, partition int, offset int64, maxBytes int) ([]Record, error) {
	rt := a.client.Transport
	if rt == nil {
		rt = kafkago.DefaultTransport
	}
	ctx, cancel := context.WithTimeout(ctx, a.client.Timeout)
	defer cancel()
	resp, err := fetchPartition(ctx, rt, a.client.Addr, &rawFetch{
		topic: topic, partition: int32(partition), offset: offset, maxBytes: int32(maxBytes), maxWait: 100 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	defer resp.release()
	recs, _, err := decodeBatches(nil, topic, partition, offset, resp.batches, resp.aborted)
	return recs, err
}

// readLegacy is Read through kafka-go's Fetch and decoder, for message
// sets older than record batches (which hold no transactions).
func (a *Admin) readLegacy(ctx context.Context, topic string, partition int, offset int64, maxBytes int) ([]Record, error) {
	resp, err := a.client.Fetch(ctx, &kafkago.FetchRequest{
		Topic: topic, Partition: partition, Offset: offset,
		MinBytes: 1, MaxBytes: int64(maxBytes), MaxWait: 100 * time.Millisecond,
		IsolationLevel: kafkago.ReadCommitted,
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%d from offset %d: %w", topic, partition, offset, err)
	}
	var out []Record
	for {
		r, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read %s/%d from offset %d: %w", topic, partition, offset, err)
		}
		if r.Offset < offset {
			// A batch may begin before the offset asked for.
			closeBytes(r.Key, r.Value)
			continue
		}
		rec, err := copyRecord(topic, partition, r)
		if err != nil {
			return out, fmt.Errorf("read %s/%d offset %d: %w", topic, partition, r.Offset, err)
		}
		out = append(out, rec)
	}
}
