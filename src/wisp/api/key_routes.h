// /v1/keys: create, list and revoke API keys over HTTP (behind the auth layer when it is on).
// The secret is shown once, in the answer to the POST; listings never carry secrets.
#pragma once

#include "wisp/api/http.h"
#include "wisp/auth/api_keys.h"

namespace wisp::api {

void AddKeyRoutes(Router& router, auth::KeyRegistry& keys, asio::thread_pool& workers);

}  // namespace wisp::api
