#include <deque>
#include <set>

#include <nlohmann/json.hpp>

#include "wisp/api/function_codec.h"
#include "wisp/api/json_views.h"
#include "wisp/api/routes.h"
#include "wisp/api/status_words.h"
#include "wisp/common/ids.h"

namespace wisp::api {
namespace {
using nlohmann::json;

constexpr int kDefaultLogLimit = 100;
constexpr int kMaxLogLimit = 1000;
constexpr int kDefaultListLimit = 100;
constexpr int kMaxListLimit = 1000;

json FunctionJson(const core::Function& f, const core::RuntimeCatalog& runtimes,
                  const scheduler::Scheduler& scheduler, bool with_code) {
  json item = EncodeFunction(FunctionApi::kV1, f.record, runtimes, with_code);
  // In place of a VM's id, address and port: the sandboxes serving this function.
  json instances = json::array();
  for (const auto& i : scheduler.Instances(f.record.id)) {
    instances.push_back({{"id", i.id},
                         {"version", i.version},
                         {"pid", i.pid},
                         {"state", i.state},
                         {"invocations", i.invocations},
                         {"started_at", TimestampJson(i.started_at_ms)}});
  }
  item["instances"] = std::move(instances);
  return item;
}

json InvocationJson(const store::InvocationRecord& r) {
  json item = {
      {"id", r.id},
      {"function_id", r.function_id},
      {"request_id", r.request_id},
      {"version", r.version},
      {"executed_version", r.executed_version.empty() ? json(nullptr) : json(r.executed_version)},
      {"status", V1CallStatuses().Word(r.status)},
      {"duration_ms", r.duration_ms},
      {"queue_wait_ms", r.queue_wait_ms},
      {"init_duration_ms", r.init_duration_ms ? json(*r.init_duration_ms) : json(nullptr)},
      {"memory_used_mb", r.memory_used_mb ? json(*r.memory_used_mb) : json(nullptr)},
      {"invoked_at", TimestampJson(r.invoked_at_ms)}};
  AddRecordPayloads(item, r);  // event, response, logs and the marks of a cut one
  return item;
}

// Reads the fields of a create or update body, checking each one's name and type.
Result<core::FunctionFields> ParseFields(const HttpRequest& request) {
  if (auto valid = CheckJson(request.body); !valid) return tl::unexpected(valid.error());
  return DecodeFunctionFields(FunctionApi::kV1, json::parse(request.body, nullptr, false));
}

// A client that lets this many records, or this many bytes of them, pile up unsent is too slow
// to follow: it is dropped rather than let the queue grow without bound (a record may carry
// megabytes of event, response and logs).
constexpr size_t kMaxPendingRecords = 1000;
constexpr size_t kMaxPendingBytes = 16u << 20;
// A comment line this often keeps proxies from closing a quiet stream, and finds clients gone.
constexpr auto kFollowHeartbeat = std::chrono::seconds(15);

std::string SseRecord(const store::InvocationRecord& record) {
  return fmt::format("event: invocation\nid: {}\ndata: {}\n\n", record.id,
                     InvocationJson(record).dump(-1, ' ', false, json::error_handler_t::replace));
}

using RecordList = std::function<Result<std::vector<store::InvocationRecord>>()>;

// GET /v1/functions/:id/logs?follow=true: each new invocation record, as the listing's items,
// as one Server-Sent Event ("event: invocation", "id: <record id>", "data: <item>"). With
// `history` (the listing's newest records, run on `workers`), those come first, oldest first,
// as `kubectl logs -f` shows what is there before it follows.
HttpResponse FollowLogs(core::FunctionService& functions, core::LogFeed& feed,
                        asio::thread_pool& workers, std::string id, RecordList history) {
  HttpResponse response;
  response.stream_kind = StreamKind::kEventStream;
  response.stream = [&functions, &feed, &workers, id,
                     history](Stream& stream) -> asio::awaitable<void> {
    std::deque<std::pair<std::string, std::string>> pending;  // record id, event
    size_t pending_bytes = 0;
    bool overflowed = false;
    auto on_record = [&](const store::InvocationRecord& record) {
      if (pending.size() >= kMaxPendingRecords || pending_bytes >= kMaxPendingBytes) {
        overflowed = true;
      } else {
        pending.emplace_back(record.id, SseRecord(record));
        pending_bytes += pending.back().second.size();
      }
      stream.Wake();
    };
    // Following before the history is read: a call that ends meanwhile is in one or the other.
    const uint64_t token = feed.Follow(id, on_record);
    // The first bytes tell the client it follows: every call from here on reaches it.
    bool alive = co_await stream.Send(fmt::format(": following function {}\n\n", id));
    if (alive && history) {
      auto past = co_await Offload(workers, history);
      std::set<std::string> sent;
      if (past) {
        for (auto it = past->rbegin(); alive && it != past->rend(); ++it) {
          sent.insert(it->id);
          alive = co_await stream.Send(SseRecord(*it));
        }
      }
      std::erase_if(pending, [&](const auto& p) {
        if (!sent.count(p.first)) return false;
        pending_bytes -= p.second.size();
        return true;
      });
    }
    while (alive && !overflowed) {
      while (alive && !pending.empty()) {
        std::string event = std::move(pending.front().second);
        pending.pop_front();
        pending_bytes -= event.size();
        alive = co_await stream.Send(std::move(event));
      }
      if (!alive || overflowed) break;
      if (!functions.Find(id)) {
        co_await stream.Send("event: deleted\ndata: {}\n\n");
        break;
      }
      if (!co_await stream.WaitUntil(std::chrono::steady_clock::now() + kFollowHeartbeat)) break;
      if (pending.empty()) alive = co_await stream.Send(": heartbeat\n\n");
    }
    feed.Unfollow(id, token);
  };
  return response;
}

HttpResponse UnsupportedType() {
  return ErrorResponse(415, "Content-Type must be application/json");
}

}  // namespace

void AddFunctionRoutes(Router& router, core::FunctionService& functions,
                       scheduler::Scheduler& scheduler, store::Store& store,
                       store::InvocationWriter& writer, asio::thread_pool& workers,
                       core::LogFeed& log_feed) {
  const core::RuntimeCatalog& runtimes = functions.runtimes();
  router.Add("POST", "/v1/functions", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {}); !known) {
      co_return ErrorResponse(known.error());
    }
    if (!AcceptsJsonBody(request)) co_return UnsupportedType();
    auto fields = ParseFields(request);
    if (!fields) co_return ErrorResponse(fields.error());
    auto created = co_await functions.Create(std::move(*fields));
    if (!created) co_return ErrorResponse(created.error());
    // The runtime as stored (an alias such as nodejs20.x is mapped onto the catalog's name) and
    // the interpreter version that runs it, so a caller sees at once what it got.
    const auto version = runtimes.Version(created->runtime);
    co_return JsonBody(201, json{{"id", created->id},
                                 {"runtime", created->runtime},
                                 {"runtime_version", version ? json(*version) : json(nullptr)}});
  });

  router.Add("GET", "/v1/functions", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
    if (auto known = CheckQueryParameters(request, {"limit", "offset", "project"}); !known) {
      co_return ErrorResponse(known.error());
    }
    auto limit = QueryInt(request, "limit", kDefaultListLimit, 1, kMaxListLimit);
    if (!limit) co_return ErrorResponse(limit.error());
    auto offset = QueryInt(request, "offset", 0, 0, INT32_MAX);
    if (!offset) co_return ErrorResponse(offset.error());
    // Metadata only, oldest first: the code of each function is on GET /v1/functions/{id}.
    auto all = functions.List();
    if (auto project = request.query.find("project"); project != request.query.end()) {
      // ?project= (empty) lists the functions outside projects.
      std::erase_if(all, [&project](const core::Function* f) {
        return f->record.project != project->second;
      });
    }
    json items = json::array();
    for (size_t i = static_cast<size_t>(*offset);
         i < all.size() && items.size() < static_cast<size_t>(*limit); ++i) {
      items.push_back(FunctionJson(*all[i], runtimes, scheduler, /*with_code=*/false));
    }
    co_return JsonBody(200, json{{"items", std::move(items)},
                                 {"total", all.size()},
                                 {"limit", *limit},
                                 {"offset", *offset}});
  });

  router.Add("GET", "/v1/functions/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (auto known = CheckQueryParameters(request, {}); !known) {
                 co_return ErrorResponse(known.error());
               }
               const auto* f = functions.Find(request.params["id"]);
               if (!f) co_return ErrorResponse(404, "function not found");
               co_return JsonBody(200, json{{"item", FunctionJson(*f, runtimes, scheduler, true)}});
             });

  router.Add("PUT", "/v1/functions/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (auto known = CheckQueryParameters(request, {}); !known) {
                 co_return ErrorResponse(known.error());
               }
               if (!AcceptsJsonBody(request)) co_return UnsupportedType();
               if (!functions.Find(request.params["id"]))
                 co_return ErrorResponse(404, "function not found");
               auto fields = ParseFields(request);
               if (!fields) co_return ErrorResponse(fields.error());
               const std::string id = request.params["id"];
               auto updated = co_await functions.Update(id, std::move(*fields));
               if (!updated) co_return ErrorResponse(updated.error());
               const auto* f = functions.Find(id);
               if (!f) co_return ErrorResponse(404, "function not found");
               co_return JsonBody(200, json{{"item", FunctionJson(*f, runtimes, scheduler, true)}});
             });

  router.Add("DELETE", "/v1/functions/:id",
             [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
               if (auto known = CheckQueryParameters(request, {}); !known) {
                 co_return ErrorResponse(known.error());
               }
               auto deleted = co_await functions.Delete(request.params["id"]);
               if (!deleted) co_return ErrorResponse(deleted.error());
               co_return JsonResponse(200, R"({"message":"Function deleted"})");
             });

  router.Add(
      "GET", "/v1/functions/:id/logs", [&](HttpRequest& request) -> asio::awaitable<HttpResponse> {
        if (auto known = CheckQueryParameters(request, {"limit", "offset", "status", "follow"});
            !known) {
          co_return ErrorResponse(known.error());
        }
        const std::string id = request.params["id"];
        if (!functions.Find(id)) co_return ErrorResponse(404, "function not found");
        bool follow = false;
        if (auto it = request.query.find("follow"); it != request.query.end()) {
          follow = it->second == "true" || it->second == "1";
          if (!follow && it->second != "false" && it->second != "0") {
            co_return ErrorResponse(400, "follow must be true or false");
          }
        }
        auto limit = QueryInt(request, "limit", kDefaultLogLimit, 1, kMaxLogLimit);
        if (!limit) co_return ErrorResponse(limit.error());
        auto offset = QueryInt(request, "offset", 0, 0, INT32_MAX);
        if (!offset) co_return ErrorResponse(offset.error());
        auto status = V1CallStatuses().Parse(request.query["status"]);
        if (!status) co_return ErrorResponse(status.error());
        auto list = [&writer, &store, id, l = *limit, o = *offset, s = *status] {
          writer.Flush();  // the newest calls are in the batch not yet written
          return store.ListInvocations(id, l, o, s);
        };
        if (follow) {
          // The newest `limit` records first only when asked for: a follower sees new calls.
          co_return FollowLogs(functions, log_feed, workers, id,
                               request.query.count("limit") ? RecordList(list) : RecordList());
        }
        auto records = co_await Offload(workers, std::move(list));
        if (!records) co_return ErrorResponse(records.error());
        json items = json::array();
        for (const auto& r : *records) items.push_back(InvocationJson(r));
        co_return JsonBody(200, json{{"items", std::move(items)}});
      });
}

}  // namespace wisp::api
