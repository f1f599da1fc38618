# ordo: the whole set-up on a machine with Go is `make demo` and `make test`.
GO        ?= go
TEST_TIMEOUT ?= 20m
CHAOS_FLAGS ?=
# Fuzz budgets are execution counts, each about 20 s on this 2-core machine:
# Go 1.26's fuzz coordinator can fail a run bounded by time at its deadline
# with "context deadline exceeded" and no crasher (go.dev/issue/75804, fixed
# in Go 1.27; CI met it once). FUZZ_TIME=30s (or 1000x) overrides them all.
FUZZ_TIME ?=

.PHONY: demo test bench lint kafka-up kafka-down kafka-cluster-up kafka-cluster-down chaos chaos-cluster fuzz

demo: ## run the demo on the embedded broker (or KAFKA_BROKERS)
	$(GO) run ./examples/orders

# The packages whose tests take longest go first: go test starts packages in
# the order named, and most tests wait on brokers and timers rather than use
# the CPU, so three run at once on two cores. The race detector's second of
# sleep at each test binary's exit (atexit_sleep_ms) lets a goroutine still
# running report a race after main returns; the testing package already fails
# the test during which a race is reported, so the sleep only costs a second
# per package.
TEST_SLOW_FIRST ?= ./jobs ./bench ./kafka ./dashboard ./actors
TEST_P ?= 3

test: ## all tests under the race detector (embedded broker unless KAFKA_BROKERS is set)
	GORACE="atexit_sleep_ms=0 $$GORACE" $(GO) test -race -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) $(TEST_SLOW_FIRST) ./...

bench: ## benchmarks against same-run baselines
	$(GO) run ./bench

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

kafka-up: ## start a real single-node Apache Kafka on 127.0.0.1:9092
	bash scripts/kafka.sh up

kafka-down: ## stop it and remove its data
	bash scripts/kafka.sh down

kafka-cluster-up: ## start a 3-broker KRaft cluster on 127.0.0.1:29091-29093 (RF 3, min ISR 2)
	bash scripts/kafka-cluster.sh up

kafka-cluster-down: ## stop it and remove its data (scripts/kafka-cluster.sh kill|start|restart N for faults)
	bash scripts/kafka-cluster.sh down

chaos: ## kill workers (and, with KAFKA_BROKERS, restart the broker) while jobs run; check nothing is lost or reordered
	$(GO) run ./bench/chaos $(CHAOS_FLAGS)

chaos-cluster: ## chaos on the 3-broker cluster (make kafka-cluster-up first): also kills the busiest leader, then the active controller
	KAFKA_BROKERS=$$(bash scripts/kafka-cluster.sh brokers) $(GO) run ./bench/chaos -cluster $(CHAOS_FLAGS)

fuzz: ## each fuzz target, for about 20 s (FUZZ_TIME overrides)
	$(GO) test -run - -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(or $(FUZZ_TIME),200000x) ./internal/envelope
	$(GO) test -run - -fuzz '^FuzzDecodeEnvelopeMatchesReference$$' -fuzztime $(or $(FUZZ_TIME),600000x) ./internal/envelope
	$(GO) test -run - -fuzz '^FuzzReducer$$' -fuzztime $(or $(FUZZ_TIME),150000x) ./actors
	$(GO) test -run - -fuzz '^FuzzWatermark$$' -fuzztime $(or $(FUZZ_TIME),40000x) ./actors
	$(GO) test -run - -fuzz '^FuzzDecode$$' -fuzztime $(or $(FUZZ_TIME),600000x) ./internal/commitmeta
	$(GO) test -run - -fuzz '^FuzzDecodeBatches$$' -fuzztime $(or $(FUZZ_TIME),120000x) ./kafka
	$(GO) test -run - -fuzz '^FuzzDecodeFetchResponse$$' -fuzztime $(or $(FUZZ_TIME),100000x) ./kafka
