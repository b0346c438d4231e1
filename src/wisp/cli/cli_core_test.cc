#include "wisp/cli/cli_core.h"

#include <gtest/gtest.h>

namespace wisp::cli {
namespace {
using nlohmann::json;

TEST(ExitCodeTest, StatusesMapOntoTheDocumentedCodes) {
  EXPECT_EQ(ExitCodeForStatus(200), kOk);
  EXPECT_EQ(ExitCodeForStatus(201), kOk);
  EXPECT_EQ(ExitCodeForStatus(202), kOk);
  EXPECT_EQ(ExitCodeForStatus(400), kUsage);
  EXPECT_EQ(ExitCodeForStatus(409), kUsage);
  EXPECT_EQ(ExitCodeForStatus(415), kUsage);
  EXPECT_EQ(ExitCodeForStatus(401), kAuth);
  EXPECT_EQ(ExitCodeForStatus(403), kAuth);
  EXPECT_EQ(ExitCodeForStatus(404), kNotFound);
  EXPECT_EQ(ExitCodeForStatus(429), kFailed);
  EXPECT_EQ(ExitCodeForStatus(500), kFailed);
  EXPECT_EQ(ExitCodeForStatus(503), kFailed);
}

TEST(ExitCodeTest, HintsSayWhatToDo) {
  EXPECT_NE(Hint(kCannotConnect, "http://127.0.0.1:1").find("make run"), std::string::npos);
  EXPECT_NE(Hint(kCannotConnect, "http://127.0.0.1:1").find("http://127.0.0.1:1"),
            std::string::npos);
  EXPECT_NE(Hint(kAuth, "").find("WISP_KEY"), std::string::npos);
  EXPECT_EQ(Hint(kOk, ""), "");
}

TEST(ErrorMessageTest, TakesWispdsErrorTextOrTheStatus) {
  EXPECT_EQ(ErrorMessage(404, R"({"error":"function not found"})"), "function not found");
  EXPECT_EQ(ErrorMessage(400, R"({"error":{"message":"bad"}})"), "bad");
  EXPECT_EQ(ErrorMessage(502, ""), "HTTP 502");
  EXPECT_EQ(ErrorMessage(500, "oops"), "HTTP 500: oops");
}

TEST(ParseUrlTest, HostPortAndPath) {
  std::string error;
  auto url = ParseUrl("http://127.0.0.1:18080", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, "18080");
  EXPECT_EQ(url->base_path, "");
  url = ParseUrl("http://example.test/wisp/", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->port, "80");
  EXPECT_EQ(url->base_path, "/wisp");
  url = ParseUrl("http://[::1]:9000", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, "9000");
  EXPECT_FALSE(ParseUrl("https://x", &error));
  EXPECT_NE(error.find("http://"), std::string::npos);
  EXPECT_FALSE(ParseUrl("127.0.0.1:1", &error));
  EXPECT_FALSE(ParseUrl("http://host:port", &error));
}

TEST(RenderTableTest, AlignsColumnsUnderTheHeader) {
  EXPECT_EQ(RenderTable({"NAME", "STATE"}, {{"hello", "ready"}, {"a", "error"}}),
            "NAME   STATE\n"
            "hello  ready\n"
            "a      error\n");
}

TEST(RenderTableTest, CutsLongCellsAndFlattensNewlines) {
  const std::string table = RenderTable({"V"}, {{std::string(100, 'x')}, {"a\nb"}});
  EXPECT_NE(table.find(std::string(57, 'x') + "..."), std::string::npos);
  EXPECT_EQ(table.find(std::string(58, 'x')), std::string::npos);
  EXPECT_NE(table.find("a b"), std::string::npos);
}

TEST(CellTest, ShowsValuesPlainly) {
  EXPECT_EQ(Cell(json("x")), "x");
  EXPECT_EQ(Cell(json(nullptr)), "-");
  EXPECT_EQ(Cell(json("")), "-");
  EXPECT_EQ(Cell(json(128)), "128");
  EXPECT_EQ(Cell(json{{"A", "1"}}), R"({"A":"1"})");
}

TEST(DeployBodyTest, CreateCarriesNameAndEveryOptionGiven) {
  DeployOptions options;
  options.name = "hello";
  options.runtime = "python";
  options.handler = "main.handler";
  options.memory_mb = 256;
  options.timeout_seconds = 10;
  options.env = {"A=1", "B=x=y"};
  std::string error;
  const json body = DeployBody(options, true, std::nullopt, "UEs=", &error);
  EXPECT_EQ(body, (json{{"name", "hello"},
                        {"runtime", "python"},
                        {"handler", "main.handler"},
                        {"memory_mb", 256},
                        {"timeout_seconds", 10},
                        {"env", {{"A", "1"}, {"B", "x=y"}}},
                        {"zip", "UEs="}}));
}

TEST(DeployBodyTest, UpdateSendsOnlyWhatChangesAndNotTheName) {
  DeployOptions options;
  options.name = "hello";
  std::string error;
  const json body = DeployBody(options, false, std::string("code"), std::nullopt, &error);
  EXPECT_EQ(body, (json{{"code", "code"}}));
}

TEST(DeployBodyTest, RefusesAnEnvWithoutEquals) {
  DeployOptions options;
  options.env = {"NOVALUE"};
  std::string error;
  EXPECT_TRUE(DeployBody(options, true, std::nullopt, std::nullopt, &error).is_null());
  EXPECT_NE(error.find("KEY=VALUE"), std::string::npos);
}

TEST(InferRuntimeTest, PythonFilesMeanPython) {
  EXPECT_EQ(InferRuntime({"main.py"}), "python");
  EXPECT_EQ(InferRuntime({"index.js", "lib/util.py"}), "python");
  EXPECT_EQ(InferRuntime({"index.js"}), "node");
}

TEST(InvokeBodyTest, WrapsTheEventFromTextOrFile) {
  const auto files = [](const std::string& path) -> std::optional<std::string> {
    if (path == "event.json") return R"({"name":"file"})";
    return std::nullopt;
  };
  std::string error;
  EXPECT_EQ(*InvokeBody(R"({"a":1})", files, &error), R"({"event":{"a":1}})");
  EXPECT_EQ(*InvokeBody("", files, &error), R"({"event":{}})");
  EXPECT_EQ(*InvokeBody("@event.json", files, &error), R"({"event":{"name":"file"}})");
  // An event that looks like a wrapper is the event itself.
  EXPECT_EQ(*InvokeBody(R"({"event":1})", files, &error), R"({"event":{"event":1}})");
  EXPECT_FALSE(InvokeBody("@missing.json", files, &error));
  EXPECT_NE(error.find("missing.json"), std::string::npos);
  EXPECT_FALSE(InvokeBody("{not json", files, &error));
  EXPECT_NE(error.find("@FILE"), std::string::npos);
}

TEST(FindFunctionIdTest, MatchesTheExactName) {
  const json page = {{"items", {{{"name", "a"}, {"id", "1"}}, {{"name", "ab"}, {"id", "2"}}}}};
  EXPECT_EQ(FindFunctionId(page, "ab"), "2");
  EXPECT_EQ(FindFunctionId(page, "a"), "1");
  EXPECT_FALSE(FindFunctionId(page, "b"));
  EXPECT_FALSE(FindFunctionId(json::object(), "a"));
}

TEST(RollbackTargetTest, PreviousVersionOrTheOneAskedFor) {
  std::string error;
  EXPECT_EQ(RollbackTarget({1, 2, 3}, 3, std::nullopt, &error), 2);
  EXPECT_EQ(RollbackTarget({1, 2, 3}, 2, std::nullopt, &error), 1);
  EXPECT_EQ(RollbackTarget({3, 1, 2}, std::nullopt, std::nullopt, &error), 2);
  EXPECT_EQ(RollbackTarget({1, 3}, 3, std::nullopt, &error), 1);  // a deleted version skipped
  EXPECT_EQ(RollbackTarget({1, 2, 3}, 1, 3, &error), 3);
  EXPECT_FALSE(RollbackTarget({1, 2}, 1, std::nullopt, &error));
  EXPECT_NE(error.find("older than 1"), std::string::npos);
  EXPECT_FALSE(RollbackTarget({}, std::nullopt, std::nullopt, &error));
  EXPECT_NE(error.find("wisp publish"), std::string::npos);
  EXPECT_FALSE(RollbackTarget({1, 2}, 2, 7, &error));
  EXPECT_NE(error.find("version 7"), std::string::npos);
}

TEST(SseParserTest, EventsSplitAcrossFeeds) {
  std::vector<std::pair<std::string, std::string>> events;
  SseParser parser([&](const std::string& e, const std::string& d) { events.emplace_back(e, d); });
  parser.Feed(": following function x\n\nevent: invocation\nid: 1\nda");
  EXPECT_TRUE(events.empty());
  parser.Feed(
      "ta: {\"a\":1}\n\n: heartbeat\n\ndata: x\r\ndata: y\r\n\r\nevent: deleted\ndata: {}\n\n");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], std::make_pair(std::string("invocation"), std::string(R"({"a":1})")));
  EXPECT_EQ(events[1], std::make_pair(std::string("message"), std::string("x\ny")));
  EXPECT_EQ(events[2].first, "deleted");
}

TEST(FormatLogRecordTest, OneLineAndItsLogs) {
  const json record = {{"invoked_at", "2026-01-01T00:00:00Z"},
                       {"request_id", "r1"},
                       {"status", "success"},
                       {"version", 2},
                       {"duration_ms", 3},
                       {"logs", {"hello", "world"}}};
  EXPECT_EQ(FormatLogRecord(record),
            "2026-01-01T00:00:00Z  r1  success  v2  3ms\n    hello\n    world\n");
}

TEST(BashCompletionTest, CompletesCommandsAndNames) {
  const std::string script = BashCompletion();
  EXPECT_NE(script.find("complete -F _wisp wisp"), std::string::npos);
  EXPECT_NE(script.find("rollback"), std::string::npos);
  EXPECT_NE(script.find("wisp ls --quiet"), std::string::npos);
}

}  // namespace
}  // namespace wisp::cli
