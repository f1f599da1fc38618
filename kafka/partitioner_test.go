package kafka

import (
	"math/rand/v2"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
)

// javaMurmur2 holds what the Java client computes, so a Go producer and a JVM
// producer put a key on the same partition. The values were produced on this
// machine with kafka-clients 4.4.0 (~/.cache/ordo-kafka/4.4.0/lib) by
//
//	byte[] b = key.getBytes(StandardCharsets.UTF_8);
//	int h = Utils.murmur2(b);                       // hash
//	Utils.toPositive(h) % n                         // for n in 1, 3, 12, 100
//
// run as `java -cp "$HOME/.cache/ordo-kafka/4.4.0/lib/*:." Vectors`, and
// cross-checked with BuiltInPartitioner.partitionForKey(b, n), which the
// default partitioner calls for keyed records.
var javaMurmur2 = []struct {
	key  string
	hash int32
	// partition for 1, 3, 12 and 100 partitions
	partitions [4]int
}{
	{"21", -973932308, [4]int{0, 0, 0, 40}},
	{"foobar", -790332482, [4]int{0, 0, 6, 66}},
	{"a-little-bit-long-string", -985981536, [4]int{0, 2, 8, 12}},
	{"a-little-bit-longer-string", -1486304829, [4]int{0, 2, 11, 19}},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, [4]int{0, 2, 5, 77}},
	{"abc", 479470107, [4]int{0, 0, 3, 7}},
	{"user-42", 1459644460, [4]int{0, 1, 4, 60}},
	{"", 275646681, [4]int{0, 0, 9, 81}},
	{"été-日本", 1580312863, [4]int{0, 1, 7, 63}},
	// bytes above 0x7f are negative in Java: {(byte)0xff, (byte)0x80, 0, 0x7f, (byte)0xfe}
	{"\xff\x80\x00\x7f\xfe", 768357719, [4]int{0, 2, 11, 19}},
}

func TestMurmur2PartitionMatchesTheJavaClient(t *testing.T) {
	for _, v := range javaMurmur2 {
		if got := int32(murmur2([]byte(v.key))); got != v.hash {
			t.Errorf("murmur2(%q) = %d, Java says %d", v.key, got, v.hash)
		}
		for i, n := range []int{1, 3, 12, 100} {
			if got := Murmur2Partition([]byte(v.key), n); got != v.partitions[i] {
				t.Errorf("Murmur2Partition(%q, %d) = %d, the Java client picks %d", v.key, n, got, v.partitions[i])
			}
		}
	}
}

// TestMurmur2PartitionAgreesWithKafkaGo checks the port against kafka-go's
// own (Java-compatible) murmur2 balancer on random keys of every tail length.
func TestMurmur2PartitionAgreesWithKafkaGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := kafkago.Murmur2Balancer{Consistent: true}
	for i := range 10_000 {
		key := make([]byte, i%67)
		for j := range key {
			key[j] = byte(rng.UintN(256))
		}
		n := 1 + int(rng.UintN(200))
		parts := make([]int, n)
		for p := range parts {
			parts[p] = p
		}
		if got, want := Murmur2Partition(key, n), b.Balance(kafkago.Message{Key: key}, parts...); got != want {
			t.Fatalf("Murmur2Partition(%x, %d) = %d, kafka-go's Murmur2Balancer says %d", key, n, got, want)
		}
	}
}

func TestMurmur2PartitionPanicsWithoutPartitions(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Murmur2Partition(key, 0) did not panic")
		}
	}()
	Murmur2Partition([]byte("k"), 0)
}
