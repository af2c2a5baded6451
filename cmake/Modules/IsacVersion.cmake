# Version variables of gr-isac for GNU Radio's CMake helpers, without git.
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Used instead of include(GrVersion). GNU Radio's GrVersion.cmake runs `git describe` on
# every configure of a git checkout, although a numbered version (all four parts numeric)
# never uses the result; on a clone without tags git then prints "fatal: No names found,
# cannot describe anything." during set-up. This module takes the version from project()
# (the one place it is written) and sets the variables that GrVersion's numbered-release
# branch sets: VERSION_MAJOR/API/ABI/PATCH and MAJOR_VERSION, API_COMPAT, MINOR_VERSION,
# MAINT_VERSION, VERSION (library VERSION), LIBVER (SOVERSION), DOCVER, RC_MINOR_VERSION,
# RC_MAINT_VERSION. It then marks GrVersion as included so a later include(GrVersion) is a
# no-op.
#
# Mapping of project(VERSION a.b.c[.d]) onto GNU Radio's scheme MAJOR.API.ABI.PATCH:
# a = MAJOR, b = API, c = ABI, d = PATCH (0 when absent).

if(NOT PROJECT_VERSION MATCHES "^[0-9]+\\.[0-9]+\\.[0-9]+(\\.[0-9]+)?$")
    message(FATAL_ERROR "IsacVersion: project() needs VERSION MAJOR.API.ABI[.PATCH] (numbers), "
                        "got '${PROJECT_VERSION}'")
endif()

set(VERSION_MAJOR ${PROJECT_VERSION_MAJOR})
set(VERSION_API ${PROJECT_VERSION_MINOR})
set(VERSION_ABI ${PROJECT_VERSION_PATCH})
if(PROJECT_VERSION_TWEAK STREQUAL "")
    set(VERSION_PATCH 0)
else()
    set(VERSION_PATCH ${PROJECT_VERSION_TWEAK})
endif()

set(MAJOR_VERSION "${VERSION_MAJOR}")
set(API_COMPAT "${VERSION_API}")
set(MINOR_VERSION "${VERSION_ABI}")
set(MAINT_VERSION "${VERSION_PATCH}")
set(VERSION "${MAJOR_VERSION}.${API_COMPAT}.${MINOR_VERSION}.${MAINT_VERSION}")
set(DOCVER "${VERSION}")
set(LIBVER "${MAJOR_VERSION}.${API_COMPAT}.${MINOR_VERSION}")
set(RC_MINOR_VERSION "${MINOR_VERSION}")
set(RC_MAINT_VERSION "${MAINT_VERSION}")

# GrVersion.cmake returns early when this is defined.
set(__INCLUDED_GR_VERSION_CMAKE TRUE)
