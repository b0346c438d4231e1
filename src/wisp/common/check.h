// WISP_CHECK: a broken invariant is a bug; print where and why, then abort.
#pragma once

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#define WISP_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

#define WISP_CHECK_OP(a, op, b)                                                                    \
  do {                                                                                             \
    const auto& wisp_a_ = (a);                                                                     \
    const auto& wisp_b_ = (b);                                                                     \
    if (!(wisp_a_ op wisp_b_)) {                                                                   \
      std::fputs(fmt::format("{}:{}: CHECK failed: {} {} {} ({} vs {})\n", __FILE__, __LINE__, #a, \
                             #op, #b, wisp_a_, wisp_b_)                                            \
                     .c_str(),                                                                     \
                 stderr);                                                                          \
      std::abort();                                                                                \
    }                                                                                              \
  } while (0)

#define WISP_CHECK_EQ(a, b) WISP_CHECK_OP(a, ==, b)
#define WISP_CHECK_NE(a, b) WISP_CHECK_OP(a, !=, b)
#define WISP_CHECK_LT(a, b) WISP_CHECK_OP(a, <, b)
#define WISP_CHECK_LE(a, b) WISP_CHECK_OP(a, <=, b)
