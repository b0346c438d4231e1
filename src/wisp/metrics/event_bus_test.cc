#include "wisp/metrics/event_bus.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

namespace wisp::metrics {
namespace {

TEST(EventBusTest, DeliversEncodedEventsToEverySubscriberUntilUnsubscribed) {
  ManualClock clock;
  EventBus bus(clock);
  EXPECT_FALSE(bus.has_subscribers());
  std::vector<std::string> a, b;
  const uint64_t ta = bus.Subscribe([&](const auto&, const auto& text) { a.push_back(*text); });
  bus.Subscribe([&](const auto&, const auto& text) { b.push_back(*text); });
  StateEvent ready;
  ready.type = "function.ready";
  ready.function_id = "f1";
  ready.function_name = "hello";
  ready.version = 3;
  ready.state = "ready";
  bus.Publish(ready);
  bus.Unsubscribe(ta);
  StateEvent reaped;
  reaped.type = "instance.reaped";
  reaped.function_id = "f1";
  reaped.instance_id = "i1";
  bus.Publish(reaped);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 2u);
  const auto first = nlohmann::json::parse(a[0]);
  EXPECT_EQ(first["type"], "function.ready");
  EXPECT_EQ(first["function_name"], "hello");
  EXPECT_EQ(first["version"], 3);
  EXPECT_EQ(first["state"], "ready");
  EXPECT_TRUE(first["at"].is_string());
  EXPECT_FALSE(first.contains("instance_id"));
  EXPECT_EQ(nlohmann::json::parse(b[1])["instance_id"], "i1");
}

TEST(EventBusTest, ASubscriberMayUnsubscribeItselfWhileCalled) {
  ManualClock clock;
  EventBus bus(clock);
  int calls = 0;
  uint64_t token = 0;
  token = bus.Subscribe([&](const auto&, const auto&) {
    ++calls;
    bus.Unsubscribe(token);
  });
  StateEvent event;
  event.type = "x";
  bus.Publish(event);
  bus.Publish(event);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace wisp::metrics
