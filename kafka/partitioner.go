package kafka

import "fmt"

// Murmur2Partition returns the partition the Java client's default
// partitioner picks for a record with this key among partitions partitions:
// toPositive(murmur2(key)) % partitions. Go and JVM producers must agree on
// it, or jobs of one key enqueued from both would land on two partitions and
// lose their order. It panics if partitions is not positive, as a modulo by
// zero would.
func Murmur2Partition(key []byte, partitions int) int {
	if partitions <= 0 {
		panic(fmt.Sprintf("kafka: Murmur2Partition with %d partitions", partitions))
	}
	return int(murmur2(key)&0x7fffffff) % partitions
}

// murmur2 is the Java client's Utils.murmur2 (seed 0x9747b28c), on uint32 so
// Java's >>> is Go's >>. kafka-go has the same function but does not export
// it.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[length&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
