// invocation_records: CPU cost of storing invocation records, the work wispd's record-writer
// thread does per call. Records go through the real InvocationWriter into a real SqliteStore in
// a fresh temporary directory, added at a steady rate so the writer forms batches of the size it
// forms under load (rate x InvocationWriter::kBatchInterval, at most kFullBatch).
//
// The table first gets --prefill rows (in full batches, not measured): a daemon that has run for
// a while has a large table, and what an insert costs depends on the index sizes. Records go to
// --functions functions in turn, and the writer keeps --records-per-function of each (wispd's
// invocation_records_per_function): with a prefill of functions x records-per-function the
// measured records run in the steady state of retention, every record written deleting one.
//
// Prints the writer thread's CPU per record (process CPU minus the adding thread's) and the
// adding thread's CPU per record spent in InvocationWriter::Add (the io thread's share in wispd).
//
// Usage: build/bench/invocation_records [--records N] [--prefill N] [--rate PER_SECOND]
//                                       [--log-lines N] [--functions N]
//                                       [--records-per-function N] [--max-bytes N]
// Defaults: 50000 records, 200000 prefilled, 5000 per second (wispd's warm throughput here), 0
// log lines (the benchmark's functions print nothing), 20 functions keeping 10000 records each
// (wispd's default), and wispd's default byte budget (1 GiB; --max-bytes 0: none).
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "wisp/common/ids.h"
#include "wisp/store/invocation_writer.h"
#include "wisp/store/sqlite_store.h"

namespace {

namespace fs = std::filesystem;
using wisp::store::FunctionRecord;
using wisp::store::InvocationRecord;
using wisp::store::InvocationWriter;
using wisp::store::SqliteStore;

struct Options {
  int records = 50000;
  int prefill = 200000;
  int rate = 5000;
  int log_lines = 0;
  int functions = 20;
  uint32_t records_per_function = 10000;
  uint64_t max_bytes = 1ull << 30;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 == argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      std::exit(2);
    }
    const long long value = std::atoll(argv[++i]);
    if (flag == "--records" && value > 0) {
      options.records = value;
    } else if (flag == "--prefill" && value >= 0) {
      options.prefill = value;
    } else if (flag == "--rate" && value > 0) {
      options.rate = value;
    } else if (flag == "--log-lines" && value >= 0) {
      options.log_lines = value;
    } else if (flag == "--functions" && value > 0) {
      options.functions = value;
    } else if (flag == "--records-per-function" && value >= 0 && value <= UINT32_MAX) {
      options.records_per_function = static_cast<uint32_t>(value);
    } else if (flag == "--max-bytes" && value >= 0) {
      options.max_bytes = static_cast<uint64_t>(value);
    } else {
      std::fprintf(stderr,
                   "usage: invocation_records [--records N] [--prefill N] [--rate PER_SECOND] "
                   "[--log-lines N] [--functions N] [--records-per-function N] [--max-bytes N]\n");
      std::exit(2);
    }
  }
  return options;
}

double ThreadCpuMicros() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

double ProcessCpuMicros() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

// What Invoker builds for the benchmark's trivial function.
InvocationRecord MakeRecord(const std::string& function_id, int log_lines) {
  InvocationRecord record;
  record.id = wisp::NewUuid();
  record.function_id = function_id;
  record.request_id = record.id;
  record.version = 1;
  record.status = "success";
  record.duration_ms = 1;
  record.event_json = R"({"n":1})";
  record.response_json = R"({"ok":true,"n":1})";
  for (int i = 0; i < log_lines; ++i) {
    record.logs.push_back(fmt::format("log line {} of the handler", i));
  }
  record.invoked_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  return record;
}

int Run(const Options& options, const fs::path& dir) {
  auto opened = SqliteStore::Open((dir / "wisp.db").string());
  if (!opened) {
    std::fprintf(stderr, "open: %s\n", opened.error().message.c_str());
    return 1;
  }
  SqliteStore& store = **opened;
  std::vector<std::string> function_ids;
  for (int i = 0; i < options.functions; ++i) {
    FunctionRecord function;
    function.id = wisp::NewUuid();
    function.name = fmt::format("bench-{}", i);
    function.runtime = "node";
    function.handler = "handler";
    function.code = "async function handler(event) { return { ok: true, n: event.n }; }\n";
    function.state = "ready";
    if (auto put = store.PutFunction(function); !put) {
      std::fprintf(stderr, "put function: %s\n", put.error().message.c_str());
      return 1;
    }
    function_ids.push_back(function.id);
  }
  auto function_of = [&function_ids](int n) -> const std::string& {
    return function_ids[n % function_ids.size()];
  };

  InvocationWriter writer(
      store, wisp::store::RecordLimits{.records_per_function = options.records_per_function,
                                       .max_total_bytes = options.max_bytes});
  for (int i = 0; i < options.prefill; ++i) {
    writer.Add(MakeRecord(function_of(i), options.log_lines));
    // Full batches, as under load; one transaction of everything would outgrow SQLite's cache.
    if ((i + 1) % InvocationWriter::kFullBatch == 0) writer.Flush();
  }
  writer.Flush();
  const uint64_t pruned_before = writer.pruned();

  // A tick's worth of records at a time: every millisecond at rates of 1000/s and more.
  const int per_tick = std::max(1, options.rate / 1000);
  const auto tick = std::chrono::microseconds(1'000'000LL * per_tick / options.rate);
  double add_micros = 0;
  const double process_start = ProcessCpuMicros();
  const double thread_start = ThreadCpuMicros();
  auto next = std::chrono::steady_clock::now();
  for (int added = 0; added < options.records;) {
    std::vector<InvocationRecord> records;
    for (int i = 0; i < per_tick && added < options.records; ++i, ++added) {
      records.push_back(MakeRecord(function_of(options.prefill + added), options.log_lines));
    }
    const double before_add = ThreadCpuMicros();
    for (auto& record : records) writer.Add(std::move(record));
    add_micros += ThreadCpuMicros() - before_add;
    next += tick;
    std::this_thread::sleep_until(next);
  }
  writer.Flush();
  const double writer_micros =
      (ProcessCpuMicros() - process_start) - (ThreadCpuMicros() - thread_start);
  if (writer.failed_batches() != 0) {
    std::fprintf(stderr, "%llu batches failed\n",
                 static_cast<unsigned long long>(writer.failed_batches()));
    return 1;
  }

  uintmax_t db_bytes = 0;
  for (const char* file : {"wisp.db", "wisp.db-wal"}) {
    std::error_code missing;
    const uintmax_t size = fs::file_size(dir / file, missing);
    if (!missing) db_bytes += size;
  }
  std::printf(
      "records %d  prefill %d  rate %d/s  log lines %d  functions %d  kept per function %u  "
      "budget %llu  db %.1f MB\n"
      "writer cpu/record %.2f us   add cpu/record %.3f us   pruned while measured %llu "
      "(evicted %llu)\n",
      options.records, options.prefill, options.rate, options.log_lines, options.functions,
      options.records_per_function, static_cast<unsigned long long>(options.max_bytes),
      db_bytes / 1e6, writer_micros / options.records, add_micros / options.records,
      static_cast<unsigned long long>(writer.pruned() - pruned_before),
      static_cast<unsigned long long>(writer.evicted()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);
  std::string pattern = (fs::temp_directory_path() / "wisp-records-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path dir = pattern;
  const int rc = Run(options, dir);
  fs::remove_all(dir);
  return rc;
}
