# Helpers: one per kind of target. Warnings and sanitizers are set on targets, never by
# overwriting CMAKE_CXX_FLAGS.

if(QUIVER_JEMALLOC)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)
endif()

function(quiver_target_defaults target)
  # Designated initializers that leave defaulted members out ({.k = 10}) are the house idiom for
  # options structs; GCC 12 flags each one under -Wextra's -Wmissing-field-initializers.
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>)
  if(QUIVER_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${QUIVER_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC -fsanitize=${QUIVER_SANITIZE})
  endif()
endfunction()

# Executables link jemalloc (unless sanitizers are on: ASan brings its own allocator).
function(quiver_link_allocator target)
  if(QUIVER_JEMALLOC AND NOT QUIVER_SANITIZE)
    target_link_libraries(${target} PRIVATE PkgConfig::JEMALLOC)
    target_compile_definitions(${target} PRIVATE QUIVER_WITH_JEMALLOC=1)
  endif()
endfunction()

# quiver_add_library(name SOURCES ... DEPS ...)
function(quiver_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  quiver_target_defaults(${name})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# quiver_add_executable(name SOURCES ... DEPS ...)
function(quiver_add_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  quiver_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  quiver_link_allocator(${name})
endfunction()

# quiver_add_test(name SOURCES ... DEPS ... [LABELS ...])
function(quiver_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  quiver_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  quiver_link_allocator(${name})
  add_test(NAME ${name} COMMAND ${name})
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()

# quiver_add_bench(name SOURCES ... DEPS ...): an executable under bench/.
function(quiver_add_bench name)
  quiver_add_executable(${name} ${ARGN})
endfunction()
