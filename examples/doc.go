// Package examples holds runnable programs that show ordo in use, one folder
// each (go run ./examples/<name>), each exercised by a test. They use the
// public API of package jobs, and run on the embedded broker unless
// KAFKA_BROKERS is set.
//
//	quickstart   the smallest useful program
//	ordered      a partitioner, VirtualKey and MaxVirtualPartitions
//	longrunning  a job longer than the session timeout, stopped at revocation and resumed
//	deadletters  a failing job retried, dead-lettered, and read back with its headers
//	embedded     ordo in a service with its own ActorSystem and HTTP server, /stats, SIGTERM
//	scheduled    jobs run later (WithDelay, WithRunAt) and cancelled (Cancel)
//	stateful     a per-key running balance in KeyState that survives passivation
//	middleware   AES-GCM payload encryption and a tenant id, each one Middleware for both phases
//	orders       the demo (make demo)
package examples
