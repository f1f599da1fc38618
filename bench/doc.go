// Command bench is ordo's benchmark harness (go run ./bench). It measures ordo
// against baselines run in the same process on the same broker.
//
// It uses the public API of package jobs, and package kafka directly only for
// the raw kafka-go baselines. Nothing imports it.
package main
