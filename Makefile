# ordo: the whole set-up on a machine with Go is `make demo` and `make test`.
GO        ?= go
TEST_TIMEOUT ?= 20m

.PHONY: demo test bench lint kafka-up kafka-down

demo: ## run the demo on the embedded broker (or KAFKA_BROKERS)
	$(GO) run ./examples/orders

test: ## all tests under the race detector (embedded broker unless KAFKA_BROKERS is set)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

bench: ## benchmarks against same-run baselines
	$(GO) run ./bench

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

kafka-up: ## start a real single-node Apache Kafka on 127.0.0.1:9092
	bash scripts/kafka.sh up

kafka-down: ## stop it and remove its data
	bash scripts/kafka.sh down
