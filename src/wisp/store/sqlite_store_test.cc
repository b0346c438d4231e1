#include "wisp/store/sqlite_store.h"

#include <unistd.h>

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

TEST_F(SqliteStoreTest, SurvivesReopen) {
  ASSERT_TRUE(store_->PutFunction(Function("f1", "one")));
  store_.reset();
  auto reopened = SqliteStore::Open(path_);
  ASSERT_TRUE(reopened);
  EXPECT_EQ((*reopened)->ListFunctions()->size(), 1u);
}

}  // namespace
}  // namespace wisp::store
