package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench: not yet; the benchmark harness arrives with the benchmarks issue")
}
