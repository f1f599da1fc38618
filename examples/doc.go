// Package examples holds runnable programs that show ordo in use, one folder
// each (go run ./examples/<name>). They use only the public API of package
// jobs, and run on the embedded broker unless KAFKA_BROKERS is set.
package examples
