// The schedule routes (schedule_routes.cc). Apart from routes.h: only wispd's main and these
// routes need the schedule module.
#pragma once

#include "wisp/api/http.h"
#include "wisp/core/function_service.h"
#include "wisp/schedule/schedule_runner.h"

namespace wisp::api {

// GET and PUT /v1/functions/:id/schedules; with `test_clock` (the test knob
// schedule_test_clock_start), also POST /v1/test/schedule-clock {"advance_seconds": N}, which
// runs a pass, moves the schedules' clock and runs another, answering what it fired.
void AddScheduleRoutes(Router& router, core::FunctionService& functions,
                       schedule::ScheduleRunner& runner, schedule::SteppedClock* test_clock);

}  // namespace wisp::api
