#include "wisp/store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace wisp::store {
namespace {

class SqliteStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/wisp_store_test_" + std::to_string(getpid()) + ".db";
    auto opened = SqliteStore::Open(path_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }
  static FunctionRecord Function(std::string id, std::string name) {
    FunctionRecord f;
    f.id = std::move(id);
    f.name = std::move(name);
    f.runtime = "node";
    f.handler = "handler";
    f.code = "async function handler(e) { return e; }";
    f.env = {{"A", "1"}};
    f.state = "ready";
    f.created_at_ms = 1000;
    f.updated_at_ms = 1000;
    return f;
  }
  static InvocationRecord Invocation(std::string id, std::string function_id) {
    InvocationRecord r;
    r.id = std::move(id);
    r.function_id = std::move(function_id);
    r.request_id = r.id;
    r.status = "success";
    r.event_json = R"({"a":1})";
    r.response_json = R"({"ok":true})";
    r.logs = {"line one", "line \"two\""};
    return r;
  }

  // The ids QueryInvocations answers, in its order.
  std::vector<std::string> QueriedIds(const InvocationQuery& query) {
    std::vector<std::string> out;
    auto got = store_->QueryInvocations(query);
    EXPECT_TRUE(got) << got.error().message;
    if (got) {
      for (const auto& r : *got) out.push_back(r.id);
    }
    return out;
  }

  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteStoreTest, AsyncAndSeed002FieldsRoundTrip) {
  auto f = Function("f9", "nine");
  f.runtime = "go";
  f.style = "program";
  f.max_retries = 5;
  f.retry_delay_seconds = 0;
  f.max_event_age_seconds = 120;
  f.max_concurrency = 7;
  f.min_instances = 2;
  f.metadata_json = R"({"team":"a"})";
  f.version_label = "1.2.3";
  f.network = "outbound";
  ASSERT_TRUE(store_->PutFunction(f));
  store_.reset();
  auto reopened = SqliteStore::Open(path_);  // the added columns exist: no migration error
  ASSERT_TRUE(reopened) << reopened.error().message;
  store_ = std::move(*reopened);
  auto listed = store_->ListFunctions();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  const auto& g = (*listed)[0];
  EXPECT_EQ(g.style, "program");
  EXPECT_EQ(g.max_retries, 5);
  EXPECT_EQ(g.retry_delay_seconds, 0);
  EXPECT_EQ(g.max_event_age_seconds, 120);
  EXPECT_EQ(g.max_concurrency, 7);
  EXPECT_EQ(g.min_instances, 2);
  EXPECT_EQ(g.metadata_json, R"({"team":"a"})");
  EXPECT_EQ(g.version_label, "1.2.3");
  EXPECT_EQ(g.network, "outbound");
}

TEST_F(SqliteStoreTest, CodeFieldsRoundTripAndOlderDatabasesGetThem) {
  auto f = Function("f1", "zipped");
  f.code.clear();
  f.code_format = "zip";
  f.code_sha256 = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
  f.code_size = 12345;
  f.code_tree = std::string(64, 'a');
  ASSERT_TRUE(store_->PutFunction(f));
  auto listed = store_->ListFunctions();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].code_format, "zip");
  EXPECT_EQ((*listed)[0].code_sha256, f.code_sha256);
  EXPECT_EQ((*listed)[0].code_size, 12345);
  EXPECT_EQ((*listed)[0].code_tree, f.code_tree);

  // A database of a wispd before code trees: the columns are added with the defaults of a
  // single-file function whose tree is not known yet.
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  for (const char* column : {"code_format", "code_sha256", "code_size", "code_tree"}) {
    const std::string drop = fmt::format("ALTER TABLE functions DROP COLUMN {}", column);
    ASSERT_EQ(sqlite3_exec(db, drop.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << column;
  }
  sqlite3_close(db);
  auto reopened = SqliteStore::Open(path_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  store_ = std::move(*reopened);
  listed = store_->ListFunctions();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].code_format, "file");
  EXPECT_EQ((*listed)[0].code_tree, "");
  EXPECT_EQ((*listed)[0].code_size, 0);
}

TEST_F(SqliteStoreTest, PutListRoundTripsEveryField) {
  auto f = Function("f1", "one");
  f.last_invoked_at_ms = 1234;
  f.vcpu = 0.5;
  ASSERT_TRUE(store_->PutFunction(f));
  auto listed = store_->ListFunctions();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  const auto& g = (*listed)[0];
  EXPECT_EQ(g.name, "one");
  EXPECT_EQ(g.code, f.code);
  EXPECT_EQ(g.env.at("A"), "1");
  EXPECT_DOUBLE_EQ(g.vcpu, 0.5);
  EXPECT_EQ(g.last_invoked_at_ms, 1234);
}

TEST_F(SqliteStoreTest, NamesAreUnique) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "same")));
  auto second = store_->PutFunction(Function("f2", "same"));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists);
  // Updating the same id keeps its name.
  EXPECT_TRUE(store_->PutFunction(Function("f1", "same")));
}

TEST_F(SqliteStoreTest, InvocationsNewestFirstAndDeletedWithFunction) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  ASSERT_TRUE(store_->PutInvocations({Invocation("i1", "f1"), Invocation("i2", "f1")}));
  ASSERT_TRUE(store_->PutInvocations({Invocation("i3", "f1"), Invocation("orphan", "nope")}));
  auto listed = store_->ListInvocations("f1", 10, 0, "");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].id, "i3");
  EXPECT_EQ((*listed)[2].id, "i1");
  EXPECT_EQ((*listed)[0].logs[1], "line \"two\"");
  auto page = store_->ListInvocations("f1", 1, 1, "");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].id, "i2");

  ASSERT_TRUE(store_->DeleteFunction("f1"));
  EXPECT_TRUE(store_->ListInvocations("f1", 10, 0, "")->empty());
  EXPECT_EQ(store_->DeleteFunction("f1").error().code, ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, InvocationsFilterByStatus) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  auto failed = Invocation("i2", "f1");
  failed.status = "error";
  auto timed_out = Invocation("i4", "f1");
  timed_out.status = "timeout";
  ASSERT_TRUE(
      store_->PutInvocations({Invocation("i1", "f1"), failed, Invocation("i3", "f1"), timed_out}));
  auto errors = store_->ListInvocations("f1", 10, 0, "error");
  ASSERT_TRUE(errors);
  ASSERT_EQ(errors->size(), 1u);
  EXPECT_EQ((*errors)[0].id, "i2");
  auto successes = store_->ListInvocations("f1", 1, 1, "success");
  ASSERT_TRUE(successes);
  ASSERT_EQ(successes->size(), 1u);
  EXPECT_EQ((*successes)[0].id, "i1");  // newest first: i3, then i1
  EXPECT_EQ(store_->ListInvocations("f1", 10, 0, "")->size(), 4u);
}

TEST_F(SqliteStoreTest, InvocationRecordsRoundTripEveryField) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  auto full = Invocation("i1", "f1");
  full.request_id = "r1";
  full.version = 3;
  full.status = "error";
  full.duration_ms = 42;
  full.memory_used_mb = 77;
  full.queue_wait_ms = 11;
  full.init_duration_ms = 9;
  full.logs = {"tab\there", "newline\nand \x01 control", "bad \xff byte", "", "é ✓"};
  full.invoked_at_ms = 1700000000123;
  auto bare = Invocation("i2", "f1");
  bare.logs.clear();
  bare.invoked_at_ms = full.invoked_at_ms + 1;  // newest invoked first
  ASSERT_TRUE(store_->PutInvocations({full, bare}));

  auto listed = store_->ListInvocations("f1", 10, 0, "");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_TRUE((*listed)[0].logs.empty());
  EXPECT_EQ((*listed)[0].memory_used_mb, std::nullopt);
  EXPECT_EQ((*listed)[0].queue_wait_ms, 0);
  EXPECT_EQ((*listed)[0].init_duration_ms, std::nullopt);
  const auto& r = (*listed)[1];
  EXPECT_EQ(r.queue_wait_ms, 11);
  EXPECT_EQ(r.init_duration_ms, 9);
  EXPECT_EQ(r.id, "i1");
  EXPECT_EQ(r.function_id, "f1");
  EXPECT_EQ(r.request_id, "r1");
  EXPECT_EQ(r.version, 3);
  EXPECT_EQ(r.status, "error");
  EXPECT_EQ(r.duration_ms, 42);
  EXPECT_EQ(r.memory_used_mb, 77);
  EXPECT_EQ(r.event_json, full.event_json);
  EXPECT_EQ(r.response_json, full.response_json);
  // Invalid UTF-8 is stored as U+FFFD, so the stored logs are always valid JSON.
  EXPECT_EQ(r.logs, (std::vector<std::string>{"tab\there", "newline\nand \x01 control",
                                              "bad \xef\xbf\xbd byte", "", "é ✓"}));
  EXPECT_EQ(r.invoked_at_ms, 1700000000123);
}

// The retries of an asynchronous invocation share its id: the stored record is the last one's.
TEST_F(SqliteStoreTest, ARecordWithAStoredIdReplacesIt) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  auto first_attempt = Invocation("i1", "f1");
  first_attempt.status = "error";
  ASSERT_TRUE(store_->PutInvocations({first_attempt, Invocation("i2", "f1")}));
  ASSERT_TRUE(store_->PutInvocations({Invocation("i1", "f1")}));
  auto listed = store_->ListInvocations("f1", 10, 0, "");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, "i1");
  EXPECT_EQ((*listed)[0].status, "success");
  EXPECT_EQ((*listed)[1].id, "i2");
}

// Puts records `<prefix>0` .. `<prefix><count - 1>` of `function_id`, oldest first.
void PutNumbered(Store& store, const std::string& function_id, const std::string& prefix,
                 int count) {
  std::vector<InvocationRecord> records;
  for (int i = 0; i < count; ++i) {
    InvocationRecord r;
    r.id = prefix + std::to_string(i);
    r.function_id = function_id;
    r.status = "success";
    r.event_json = "{}";
    r.response_json = "{}";
    records.push_back(std::move(r));
  }
  ASSERT_TRUE(store.PutInvocations(records));
}

std::vector<std::string> StoredIds(Store& store, const std::string& function_id) {
  auto listed = store.ListInvocations(function_id, 1000, 0, "");
  EXPECT_TRUE(listed);
  std::vector<std::string> ids;
  for (const auto& r : *listed) ids.push_back(r.id);
  return ids;
}

TEST_F(SqliteStoreTest, PruneKeepsTheNewestRecordsOfTheFunctionsNamed) {
  for (const char* id : {"f1", "f2", "f3"}) ASSERT_TRUE(store_->PutFunction(Function(id, id)));
  PutNumbered(*store_, "f1", "a", 10);
  PutNumbered(*store_, "f2", "b", 4);
  PutNumbered(*store_, "f3", "c", 4);
  auto pruned = store_->PruneInvocations({"f1", "f2"}, {.keep = 3, .max_deleted = 100});
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(pruned->deleted, 8u);
  EXPECT_TRUE(pruned->unfinished.empty());
  EXPECT_EQ(StoredIds(*store_, "f1"), (std::vector<std::string>{"a9", "a8", "a7"}));
  EXPECT_EQ(StoredIds(*store_, "f2"), (std::vector<std::string>{"b3", "b2", "b1"}));
  EXPECT_EQ(StoredIds(*store_, "f3").size(), 4u);  // not named
}

TEST_F(SqliteStoreTest, PruneDeletesNoMoreThanItsBudgetAndNamesWhatIsLeft) {
  for (const char* id : {"f1", "f2"}) ASSERT_TRUE(store_->PutFunction(Function(id, id)));
  PutNumbered(*store_, "f1", "a", 20);
  PutNumbered(*store_, "f2", "b", 5);
  std::vector<std::string> functions = {"f1", "f2"};
  uint64_t deleted = 0;
  int calls = 0;
  while (!functions.empty()) {
    ASSERT_LT(++calls, 10);
    auto pruned = store_->PruneInvocations(functions, {.keep = 2, .max_deleted = 6});
    ASSERT_TRUE(pruned) << pruned.error().message;
    EXPECT_LE(pruned->deleted, 6u);
    deleted += pruned->deleted;
    functions = pruned->unfinished;
  }
  EXPECT_EQ(deleted, 18u + 3u);
  EXPECT_EQ(calls, 4);  // f1's 18 six at a time, then f2's 3
  EXPECT_EQ(StoredIds(*store_, "f1"), (std::vector<std::string>{"a19", "a18"}));
  EXPECT_EQ(StoredIds(*store_, "f2"), (std::vector<std::string>{"b4", "b3"}));
}

TEST_F(SqliteStoreTest, PruneLeavesAnExcessSmallerThanItsMinimum) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  PutNumbered(*store_, "f1", "a", 10);
  const PruneOptions options{.keep = 5, .min_excess = 6, .max_deleted = 100};
  auto pruned = store_->PruneInvocations({"f1"}, options);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->deleted, 0u);
  EXPECT_TRUE(pruned->unfinished.empty());
  PutNumbered(*store_, "f1", "b", 1);
  pruned = store_->PruneInvocations({"f1"}, options);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->deleted, 6u);
  EXPECT_EQ(StoredIds(*store_, "f1"), (std::vector<std::string>{"b0", "a9", "a8", "a7", "a6"}));
}

// Pruning trusts the counts it keeps between calls: replaced and dropped records must not move
// them.
TEST_F(SqliteStoreTest, PruneCountsReplacedAndDroppedRecordsRight) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  PutNumbered(*store_, "f1", "a", 5);
  const PruneOptions options{.keep = 5, .max_deleted = 100};
  ASSERT_EQ(store_->PruneInvocations({"f1"}, options)->deleted, 0u);  // now counted
  ASSERT_TRUE(store_->PutInvocations(
      {Invocation("a2", "f1"), Invocation("orphan", "nope"), Invocation("a5", "f1")}));
  auto pruned = store_->PruneInvocations({"f1"}, options);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->deleted, 1u);
  EXPECT_EQ(StoredIds(*store_, "f1"), (std::vector<std::string>{"a5", "a2", "a4", "a3", "a1"}));
}

TEST_F(SqliteStoreTest, PruneCountsAFunctionAnewAfterItIsDeleted) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  PutNumbered(*store_, "f1", "a", 4);
  ASSERT_EQ(store_->PruneInvocations({"f1"}, {.keep = 10, .max_deleted = 100})->deleted, 0u);
  ASSERT_TRUE(store_->DeleteFunction("f1"));
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  PutNumbered(*store_, "f1", "b", 2);
  auto pruned = store_->PruneInvocations({"f1"}, {.keep = 1, .max_deleted = 100});
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->deleted, 1u);
  EXPECT_EQ(StoredIds(*store_, "f1"), (std::vector<std::string>{"b1"}));
}

// Pages of the database at `path` as another connection sees them: {page_count, freelist}.
std::pair<int64_t, int64_t> Pages(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  int64_t values[2] = {-1, -1};
  const char* sql[2] = {"PRAGMA page_count", "PRAGMA freelist_count"};
  for (int i = 0; i < 2; ++i) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, sql[i], -1, &stmt, nullptr);
    if (sqlite3_step(stmt) == SQLITE_ROW) values[i] = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return {values[0], values[1]};
}

int64_t PragmaOf(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  int64_t value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

TEST_F(SqliteStoreTest, CutFieldsAndTheAsyncMarkRoundTrip) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  auto cut = Invocation("i1", "f1");
  cut.async = true;
  cut.event_json = R"({"big":)";  // the first bytes of a larger event: not JSON
  cut.event_size = 5'000'000;
  cut.response_size = 7'000'000;
  cut.logs_size = 123'456;
  ASSERT_TRUE(store_->PutInvocations({cut, Invocation("i2", "f1")}));
  auto got = store_->GetInvocation("i1");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(got->async);
  EXPECT_EQ(got->event_json, R"({"big":)");
  EXPECT_EQ(got->event_size, 5'000'000);
  EXPECT_EQ(got->response_size, 7'000'000);
  EXPECT_EQ(got->logs_size, 123'456);
  auto whole = store_->GetInvocation("i2");
  ASSERT_TRUE(whole);
  EXPECT_FALSE(whole->async);
  EXPECT_EQ(whole->event_size, std::nullopt);
  EXPECT_EQ(whole->response_size, std::nullopt);
  EXPECT_EQ(whole->logs_size, std::nullopt);
  EXPECT_EQ(store_->GetInvocation("nope").error().code, ErrorCode::kNotFound);
}

// Lists of every function merge each function's newest: records invoked at the same time are
// in the order they were written, whatever their function, newest first.
TEST_F(SqliteStoreTest, QueriesOfEveryFunctionBreakTimeTiesByWritingAcrossFunctions) {
  for (const char* id : {"f1", "f2", "f3"}) ASSERT_TRUE(store_->PutFunction(Function(id, id)));
  std::vector<InvocationRecord> records;
  for (int i = 0; i < 6; ++i) {
    auto r = Invocation("r" + std::to_string(i), i % 3 == 0 ? "f1" : i % 3 == 1 ? "f2" : "f3");
    r.invoked_at_ms = i < 3 ? 500 : 700;
    records.push_back(r);
  }
  ASSERT_TRUE(store_->PutInvocations({records[0], records[1], records[2]}));
  ASSERT_TRUE(store_->PutInvocations({records[5], records[3], records[4]}));
  EXPECT_EQ(QueriedIds({.keys_only = true}),
            (std::vector<std::string>{"r4", "r3", "r5", "r2", "r1", "r0"}));
  EXPECT_EQ(QueriedIds({.limit = 2, .offset = 2}), (std::vector<std::string>{"r5", "r2"}));
}

TEST_F(SqliteStoreTest, QueriesFilterByFunctionStatusKindAndTimeNewestFirst) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  ASSERT_TRUE(store_->PutFunction(Function("f2", "two")));
  std::vector<InvocationRecord> records;
  for (int i = 0; i < 10; ++i) {
    auto r = Invocation("r" + std::to_string(i), i % 2 ? "f2" : "f1");
    r.invoked_at_ms = 1000 + i * 10;
    r.status = i % 3 == 0 ? "error" : "success";
    r.async = i == 4;
    records.push_back(r);
  }
  // Written out of time order: queries order by invocation time, not by writing.
  std::swap(records[2], records[7]);
  ASSERT_TRUE(store_->PutInvocations(records));
  EXPECT_EQ(QueriedIds({.limit = 3}), (std::vector<std::string>{"r9", "r8", "r7"}));
  EXPECT_EQ(QueriedIds({.function_id = "f1"}),
            (std::vector<std::string>{"r8", "r6", "r4", "r2", "r0"}));
  EXPECT_EQ(QueriedIds({.function_id = "f1", .status = "error"}),
            (std::vector<std::string>{"r6", "r0"}));
  EXPECT_EQ(QueriedIds({.function_id = "f1", .async = false}),
            (std::vector<std::string>{"r8", "r6", "r2", "r0"}));
  EXPECT_EQ(QueriedIds({.async = true}), (std::vector<std::string>{"r4"}));
  // since: at or after; until: before.
  EXPECT_EQ(QueriedIds({.since_ms = 1030, .until_ms = 1060}),
            (std::vector<std::string>{"r5", "r4", "r3"}));
  EXPECT_EQ(QueriedIds({.limit = 2, .offset = 1}), (std::vector<std::string>{"r8", "r7"}));
  EXPECT_EQ(QueriedIds({.status = "error", .limit = 2, .offset = 1}),
            (std::vector<std::string>{"r6", "r3"}));
  auto keys = store_->QueryInvocations({.function_id = "f2", .limit = 1, .keys_only = true});
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].id, "r9");
  EXPECT_EQ((*keys)[0].invoked_at_ms, 1090);
  EXPECT_EQ((*keys)[0].status, "error");
  EXPECT_TRUE((*keys)[0].event_json.empty());
}

// Records of 32 KiB, the oldest evicted across functions once the pages in use pass the budget.
TEST_F(SqliteStoreTest, TheByteBudgetEvictsTheOldestRecordsOfEveryFunction) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  ASSERT_TRUE(store_->PutFunction(Function("f2", "two")));
  constexpr uint64_t kBudget = 2 << 20;
  const PruneOptions options{.keep = 10000, .max_deleted = 1024, .max_bytes = kBudget};
  uint64_t evicted = 0;
  int n = 0;
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<InvocationRecord> records;
    for (int i = 0; i < 10; ++i, ++n) {
      auto r = Invocation(fmt::format("r{:04}", n), n % 2 ? "f2" : "f1");
      r.event_json = '"' + std::string(32 << 10, 'x') + '"';
      r.invoked_at_ms = n;
      records.push_back(std::move(r));
    }
    ASSERT_TRUE(store_->PutInvocations(records));
    auto pruned = store_->PruneInvocations({"f1", "f2"}, options);
    ASSERT_TRUE(pruned) << pruned.error().message;
    EXPECT_EQ(pruned->deleted, pruned->evicted);  // none over the per-function count
    evicted += pruned->evicted;
    const auto [pages, free] = Pages(path_);
    EXPECT_LE(static_cast<uint64_t>(pages - free) * 4096, kBudget) << "batch " << batch;
  }
  EXPECT_GT(evicted, 100u);  // 6.4 MB written into 2 MiB
  auto left = store_->QueryInvocations({.limit = 1000, .keys_only = true});
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 200u - evicted);
  // The newest remain, of both functions; everything older than the oldest left is gone.
  EXPECT_EQ(left->front().id, "r0199");
  EXPECT_EQ(left->back().id, fmt::format("r{:04}", evicted));
  // The per-function counts stayed exact: a prune to 5 each deletes the right number.
  auto trimmed = store_->PruneInvocations({"f1", "f2"}, {.keep = 5, .max_deleted = 1024});
  ASSERT_TRUE(trimmed);
  EXPECT_EQ(trimmed->deleted, left->size() - 10);
}

TEST_F(SqliteStoreTest, ReclaimSpaceShrinksTheFileInBoundedSteps) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  ASSERT_TRUE(store_->PutFunction(Function("f2", "two")));
  for (int batch = 0; batch < 8; ++batch) {
    std::vector<InvocationRecord> records;
    for (int i = 0; i < 16; ++i) {
      auto r = Invocation(fmt::format("r{}-{}", batch, i), "f1");
      r.response_json = '"' + std::string(64 << 10, 'y') + '"';
      records.push_back(std::move(r));
    }
    ASSERT_TRUE(store_->PutInvocations(records));
  }
  ASSERT_TRUE(store_->PutInvocations({Invocation("kept", "f2")}));
  const auto [pages_before, free_before] = Pages(path_);
  EXPECT_GT(pages_before * 4096, 8 << 20);
  ASSERT_TRUE(store_->DeleteFunction("f1"));
  EXPECT_GT(Pages(path_).second, 2000);  // freed, still in the file

  auto step = store_->ReclaimSpace(0, 1 << 20);
  ASSERT_TRUE(step) << step.error().message;
  EXPECT_GT(step->freed_bytes, 0u);
  EXPECT_LE(step->freed_bytes, (1u << 20) + (64u << 10));
  EXPECT_TRUE(step->unfinished);
  ReclaimResult last;
  for (int i = 0; i < 100 && (i == 0 || last.unfinished); ++i) {
    auto r = store_->ReclaimSpace(512 << 10, 8 << 20);
    ASSERT_TRUE(r);
    last = *r;
  }
  EXPECT_FALSE(last.unfinished);
  const auto [pages_after, free_after] = Pages(path_);
  EXPECT_LE(free_after * 4096, 512 << 10);  // the reserve asked for
  EXPECT_LT(pages_after, pages_before / 4);
  // The file itself shrank (the checkpoint after the vacuum wrote it back).
  EXPECT_LT(std::filesystem::file_size(path_), static_cast<uintmax_t>(pages_before) * 4096 / 4);
  EXPECT_TRUE(store_->GetInvocation("kept"));
}

TEST_F(SqliteStoreTest, DatabaseFilesAreOwnerOnlyAlsoWhenAnOlderWispdLeftThemOpen) {
  EXPECT_EQ(ModeOf(path_), 0600u);
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  EXPECT_EQ(ModeOf(path_ + "-wal"), 0600u);
  store_.reset();
  // As an older wispd left them (SQLite's default 0644).
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (ModeOf(path_ + suffix) != 0) {
      ASSERT_EQ(::chmod((path_ + suffix).c_str(), 0644), 0);
    }
  }
  auto reopened = SqliteStore::Open(path_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const mode_t mode = ModeOf(path_ + suffix);
    if (mode != 0) {
      EXPECT_EQ(mode, 0600u) << suffix;
    }
  }
  store_ = std::move(*reopened);
}

TEST(SqliteStoreFiles, ASymbolicLinkInPlaceOfTheDatabaseIsRefused) {
  const std::string dir = testing::TempDir() + "/wisp_store_link_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(dir + "/elsewhere.db", dir + "/wisp.db");
  auto opened = SqliteStore::Open(dir + "/wisp.db");
  EXPECT_FALSE(opened);
  EXPECT_FALSE(std::filesystem::exists(dir + "/elsewhere.db"));
  std::filesystem::remove_all(dir);
}

// A database written before incremental vacuum, budgets and time indexes: converted on open,
// its records readable.
TEST(SqliteStoreFiles, AnOlderDatabaseIsConvertedToIncrementalVacuum) {
  const std::string path = testing::TempDir() + "/wisp_store_old_" + std::to_string(getpid());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* old_schema = R"sql(
    PRAGMA journal_mode=WAL;
    CREATE TABLE functions (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, runtime TEXT NOT NULL,
      handler TEXT NOT NULL, code TEXT NOT NULL, timeout_seconds INTEGER NOT NULL,
      memory_mb INTEGER NOT NULL, vcpu REAL NOT NULL, env_json TEXT NOT NULL,
      version INTEGER NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL, last_invoked_at_ms INTEGER);
    CREATE TABLE invocations (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
      function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
      request_id TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,
      duration_ms INTEGER NOT NULL, memory_used_mb INTEGER, event_json TEXT NOT NULL,
      response_json TEXT NOT NULL, logs_json TEXT NOT NULL, invoked_at_ms INTEGER NOT NULL);
    CREATE INDEX invocations_by_function ON invocations(function_id, seq);
    CREATE INDEX invocations_by_time ON invocations(invoked_at_ms);
    INSERT INTO functions VALUES ('f1', 'one', 'node', 'h', 'code', 3, 128, 1, '{}', 1, 'ready',
      '', 1, 1, NULL);
    INSERT INTO invocations (id, function_id, request_id, version, status, duration_ms,
      event_json, response_json, logs_json, invoked_at_ms)
      VALUES ('old', 'f1', 'old', 1, 'error', 5, '{"e":1}', '{"r":2}', '["l"]', 1234);
  )sql";
  ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  ASSERT_EQ(PragmaOf(path, "PRAGMA auto_vacuum"), 0);

  auto opened = SqliteStore::Open(path);
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(PragmaOf(path, "PRAGMA auto_vacuum"), 2);  // incremental
  // The index of every function's records by time is gone: it cost every record a B-tree.
  EXPECT_EQ(PragmaOf(path, "SELECT count(*) FROM sqlite_master WHERE name = 'invocations_by_time'"),
            0);
  auto got = (*opened)->GetInvocation("old");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->event_json, R"({"e":1})");
  EXPECT_EQ(got->logs, std::vector<std::string>{"l"});
  EXPECT_FALSE(got->async);
  EXPECT_EQ(got->event_size, std::nullopt);
  auto listed = (*opened)->QueryInvocations({.function_id = "f1", .status = "error"});
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 1u);
  opened->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) unlink((path + suffix).c_str());
}

TEST_F(SqliteStoreTest, SurvivesReopen) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  store_.reset();
  auto reopened = SqliteStore::Open(path_);
  ASSERT_TRUE(reopened);
  EXPECT_EQ((*reopened)->ListFunctions()->size(), 1u);
}

}  // namespace
}  // namespace wisp::store
