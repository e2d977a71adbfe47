# The two commands (see README.md):
#   make demo   install what is missing, build, and run the demo on the
#               embedded default data set (MiniLM embeddings of SAP Fiori docs)
#   make test   install what is missing, build, and run every test, then the
#               unit tests again under AddressSanitizer + UBSan
#   make bench  ruvector and hnswlib on the same data in one run -> docs/BENCHMARKS.md
#   make bench-learn  simulated users on real data: what learning gains -> docs/LEARNING.md
#   make bench-learn-seeds  the same, all learners at 10k events, over several seeds
#   make bench-profile instructions and cache misses per query vs hnswlib -> docs/PROFILE.md
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all setup build data demo test test-fast test-asan test-tsan fuzz bench bench-learn bench-learn-seeds bench-profile install clean

all: build

setup:
	./scripts/setup.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

data:
	./scripts/data.sh

demo: setup build
	./scripts/data.sh fiori
	./scripts/demo.sh $(BUILD)

test: setup build data
	cd $(BUILD) && ctest --output-on-failure -j 2
	./bindings/node/test.sh $(BUILD)
	./scripts/pgtest.sh
	$(MAKE) test-asan
	$(MAKE) test-tsan

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 2 -LE slow

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRV_SANITIZE=ON \
	      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j 2 -LE slow

bench: build
	./scripts/bench.sh $(BUILD)

bench-profile: build
	./bench/profile.sh $(BUILD)

bench-learn: build
	./scripts/learndata.sh $(BUILD)
	$(BUILD)/bench/learn_bench --out docs/learning
	gnuplot -e "dir='docs/learning'" bench/learn/plots.gp

# Run-to-run spread of all learners at 10k events over class seeds (about
# 20 min): docs/learning/seeds/seeds.md.
bench-learn-seeds: build
	./scripts/learndata.sh $(BUILD)
	./bench/learn/seeds.sh $(BUILD) docs/learning/seeds

# ThreadSanitizer over the cases where threads share an index or a handle.
TSAN_BUILD ?= build-tsan
test-tsan:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRV_TSAN=ON \
	      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target test_hnsw test_db test_learn_db test_feedback
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 \
	  ctest --output-on-failure -R '^(hnsw\.(threads_|concurrent_)|db\.concurrent_|learn_db\.concurrent_|feedback\.concurrent_)'

fuzz:
	cmake -S . -B build-fuzz -DRV_FUZZ=ON -DRV_SANITIZE=ON \
	      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	cmake --build build-fuzz -j $(JOBS)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz
