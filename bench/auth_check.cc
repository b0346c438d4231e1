// CPU of the authentication checks on the request path, alone (Google Benchmark):
// build/bench/auth_check. The bearer lookup (hash the token, find the hash, compare) with 1 and
// 1000 keys, and a SigV4 verification of a small invoke and of a 1 MiB body (whose hash
// dominates).
#include <benchmark/benchmark.h>

#include "wisp/auth/api_keys.h"
#include "wisp/auth/sigv4.h"

namespace {

using wisp::auth::ApiKey;
using wisp::auth::KeySet;

std::vector<ApiKey> MakeKeys(int n) {
  std::vector<ApiKey> keys;
  for (int i = 0; i < n; ++i) {
    keys.push_back(ApiKey{*wisp::auth::NewKeyId(), *wisp::auth::NewSecret(), "", 0,
                          wisp::auth::KeySource::kStore});
  }
  return keys;
}

void BM_BearerLookup(benchmark::State& state) {
  const KeySet keys(MakeKeys(static_cast<int>(state.range(0))));
  const std::string secret = keys.keys().back().secret;
  for (auto _ : state) benchmark::DoNotOptimize(keys.FindBySecret(secret));
}
BENCHMARK(BM_BearerLookup)->Arg(1)->Arg(1000);

void BM_BearerMiss(benchmark::State& state) {
  const KeySet keys(MakeKeys(1));
  const std::string wrong(40, 'x');
  for (auto _ : state) benchmark::DoNotOptimize(keys.FindBySecret(wrong));
}
BENCHMARK(BM_BearerMiss);

void BM_SigV4Verify(benchmark::State& state) {
  const std::string secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  const std::string body(static_cast<size_t>(state.range(0)), 'a');
  const auto now = std::chrono::system_clock::now();
  const std::string amz_date = wisp::auth::FormatAmzDate(now);
  const std::string date = amz_date.substr(0, 8);
  std::map<std::string, std::string> headers = {{"host", "127.0.0.1:18080"},
                                                {"x-amz-date", amz_date}};
  const std::string path = "/2015-03-31/functions/my-function/invocations";
  const wisp::auth::SignedRequest request{"POST", path, "", &headers, body};
  const std::string scope = date + "/us-east-1/lambda/aws4_request";
  const std::string signature = wisp::auth::Hex(wisp::auth::HmacSha256(
      wisp::auth::SigningKey(secret, date, "us-east-1", "lambda"),
      wisp::auth::StringToSign(amz_date, scope,
                               wisp::auth::CanonicalRequest(request, {"host", "x-amz-date"},
                                                            wisp::auth::Sha256Hex(body)))));
  headers["authorization"] = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" + scope +
                             ", SignedHeaders=host;x-amz-date, Signature=" + signature;
  const wisp::auth::SigV4Verifier verifier(wisp::auth::SigV4Options{"us-east-1"});
  const auto secret_of = [&secret](std::string_view) { return &secret; };
  for (auto _ : state) {
    auto verified = verifier.Verify(request, now, secret_of);
    if (!verified) state.SkipWithError(verified.error().message.c_str());
    benchmark::DoNotOptimize(verified);
  }
}
BENCHMARK(BM_SigV4Verify)->Arg(16)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
