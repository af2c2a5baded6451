/*
 * The check macro of the C++ QA programs (lib/qa_*.cc): CHECK(cond, printf-args) prints
 * "FAIL file:line: message" and counts the failure in ``failures``; main returns nonzero
 * when any check failed.
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#ifndef INCLUDED_ISAC_QA_CHECK_H
#define INCLUDED_ISAC_QA_CHECK_H

#include <cstdio>

static int failures = 0;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
            std::fprintf(stderr, __VA_ARGS__);                                                                         \
            std::fprintf(stderr, "\n");                                                                                \
            ++failures;                                                                                                \
        }                                                                                                              \
    } while (0)

#endif
