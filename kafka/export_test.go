package kafka

// SetHeartbeatHook has fn told the outcome of each heartbeat c sends; call
// it before Run.
func SetHeartbeatHook(c *Consumer, fn func(error)) { c.heartbeatHook = fn }

// BatchRecord is a record of a batch AppendRecordBatch encodes.
type BatchRecord = batchRecord

// AppendRecordBatch is appendRecordBatch, for the tests that write
// transactions with kafka-go's RawProduce.
func AppendRecordBatch(dst []byte, producerID int64, epoch int16, baseSequence int32, transactional bool, records ...BatchRecord) []byte {
	return appendRecordBatch(dst, batchProducer{id: producerID, epoch: epoch, baseSequence: baseSequence, transactional: transactional}, records)
}
