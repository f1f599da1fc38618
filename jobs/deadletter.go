package jobs

// MaxReasonBytes is the most bytes of a job's error that a dead letter's
// HeaderError and a log line carry. A longer one keeps its start and ends in
// "… [cut: N bytes]", N its full length, the whole within MaxReasonBytes.
// 4 KiB holds any error a person reads whole, while headers count toward
// Kafka's message size (1 MB by default) and every log line carries it:
// uncut, a 1 MB error made its dead letter too large to write and logged
// 1 MB on every try.
const MaxReasonBytes = 4 << 10
