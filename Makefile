# The two commands a newcomer needs: `make run` and `make test`. Both install what is missing.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
LISTEN ?= 127.0.0.1:18080
DATA_DIR ?= data

.PHONY: deps test-deps configure build run test unit e2e bench format clean

deps:
	@scripts/install-deps

# Also the clients the tests drive (npm; aws-lambda-ric builds a native addon).
test-deps:
	@scripts/install-deps --test-clients

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR)

run: build
	mkdir -p $(DATA_DIR)
	$(BUILD_DIR)/bin/wispd --listen $(LISTEN) --data-dir $(DATA_DIR)

test: build test-deps
	ctest --test-dir $(BUILD_DIR) --output-on-failure --timeout 900

bench: build
	bench/run $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR)
